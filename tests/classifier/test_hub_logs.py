"""A hub id this machine cannot fetch, in the real CLIs (and for the routers' sentence encoder and
MF checkpoint): one clear error at once, not minutes of huggingface_hub's retries, and every
library line printed once, in the process's log format.

The hub is unreachable two ways: `HF_ENDPOINT` at a loopback port nobody listens on (refused,
on any machine), and the default endpoint with `HF_HUB_OFFLINE` unset (this test machine has no
network; where there is one the hub answers 404 for the made-up id, which must be as clear)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from classifier.loading import FIX_HINT
from tests.processes import Process

MODEL = "routellm-gateway-tests/never-downloaded"
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+ (?P<message>.+)$")


def closed_endpoint() -> str:
    """A loopback URL that refuses connections: the port was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def hub_env(tmp_path: Path, endpoint: str | None, fmt: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HF_HOME": str(tmp_path / "hf-home"),  # an empty cache: the model must be downloaded
        "ROUTELLM_BERT_MODEL": MODEL,
        "ROUTELLM_LOG_FORMAT": fmt,
        "TOKENIZERS_PARALLELISM": "false",
    }
    if endpoint is not None:
        env["HF_ENDPOINT"] = endpoint
    return env


def assert_each_line_once(messages: list[str], lines: list[str]) -> None:
    """No line twice, no log message also printed bare, and no retry at all."""
    assert len(lines) == len(set(lines)), lines
    assert not set(messages) & set(lines), lines
    assert not any("Retrying in" in line or "thrown while requesting" in line for line in lines)


@pytest.mark.parametrize("endpoint", ["refused", "default"])
def test_the_gateway_says_why_in_one_line_without_retrying(tmp_path: Path, endpoint: str) -> None:
    url = closed_endpoint() if endpoint == "refused" else None
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "--port", "0"],
        env=hub_env(tmp_path, url, "text"),
        capture_output=True,
        text=True,
        timeout=300,  # a safety net; the retries this replaces took about 50 s
        check=False,
    )
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 2, lines
    error = lines[-1]
    assert error.startswith("routellm-gateway: "), lines
    assert MODEL in error
    assert FIX_HINT in error
    if url is not None:
        assert "hub is unreachable" in error
    logged = [TEXT_LINE.match(line) for line in lines[:-1]]
    assert all(logged), lines  # everything before the error is a log line in the text format
    assert_each_line_once([m["message"] for m in logged if m], lines)


def test_the_service_logs_the_error_once_in_json(tmp_path: Path) -> None:
    env = hub_env(tmp_path, closed_endpoint(), "json")
    with Process(["-m", "classifier", "--port", "0"], env) as service:
        deadline = time.monotonic() + 120  # the service loads its model after it starts
        while not any('"ERROR"' in line for line in service.lines):
            assert time.monotonic() < deadline, service.lines
            time.sleep(0.05)
        lines = list(service.lines)
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    errors = [r for r in records if r["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["logger"] == "classifier.service"
    assert "hub is unreachable" in errors[0]["message"]
    assert FIX_HINT in errors[0]["message"]
    assert_each_line_once([r["message"] for r in records], lines)


def test_library_warnings_print_once_in_the_process_format() -> None:
    script = (
        "import logging; from classifier.logs import configure_logging; "
        "configure_logging('text'); "
        "logging.getLogger('huggingface_hub.utils._http').warning('from the hub'); "
        "from transformers.utils import logging as tl; "
        "from classifier.logs import adopt_library_logs; adopt_library_logs(); "
        "tl.get_logger('transformers.tokenization_utils_base').warning('from transformers')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={"PATH": os.environ.get("PATH", ""), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stderr.splitlines()
    assert [TEXT_LINE.match(line) is not None for line in lines] == [True, True], lines
    assert lines[0].endswith("WARNING huggingface_hub.utils._http from the hub")
    assert lines[1].endswith("WARNING transformers.tokenization_utils_base from transformers")


@pytest.mark.parametrize(
    ("load", "expected"),
    [
        pytest.param(
            "from routers.encoders import LocalEncoder; LocalEncoder.load(MODEL)",
            "cannot download the sentence encoder",
            id="sentence-encoder",
        ),
        pytest.param(
            "from routers.mf import resolve; resolve(MODEL)",
            "the MF checkpoint",
            id="mf-checkpoint",
        ),
    ],
)
def test_routers_hub_loads_fail_at_once_with_the_fix(
    tmp_path: Path, load: str, expected: str
) -> None:
    env = hub_env(tmp_path, closed_endpoint(), "text")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    script = f"MODEL = {MODEL!r}\n{load.replace('; ', chr(10))}"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a safety net; huggingface_hub's retries took about 25 s a file
        check=False,
    )
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 1, lines
    error = lines[-1]
    assert expected in error, lines
    assert "hub is unreachable" in error
    assert "ROUTELLM_MF_MODEL=DIR" in error or "local directory" in error
    assert not any("Retrying in" in line or "thrown while requesting" in line for line in lines)
