"""Log lines of the real processes, in both formats: the gateway (`python -m gateway`) in front of
the classifier service (`python -m classifier`, a tiny checkpoint), the seed's two-machine layout.
Every line either process writes is parsed; none may carry a key, a token, a query string or
message content."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from classifier.logs import LogFormat, configure_logging
from gateway.observe.logs import log_request
from tests.gateway.conftest import SDK
from tests.processes import Process

HI = [{"role": "user", "content": "my secret question"}]
SECRETS = (
    "my secret question",
    "client-key-123",
    "wrong-key-456",
    "upstream-secret",
    "hf-secret-token",
    "query-secret",
)
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+ \S.*$"
)


def parse(fmt: LogFormat, line: str) -> dict[str, Any]:
    """One line as `{ts, level, logger, message, ...fields}`; fails unless it is well formed."""
    if fmt == "json":
        record = json.loads(line)
        assert isinstance(record, dict)
        assert {"ts", "level", "logger", "message"} <= record.keys()
        assert datetime.fromisoformat(record["ts"]).utcoffset() == timedelta(0)
        return record
    assert TEXT_LINE.match(line), line
    _, _, level, logger, message = line.split(" ", 4)
    return {"level": level, "logger": logger, "message": message}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_line_of_both_processes_parses_and_holds_no_secret(
    sdk: SDK,
    fmt: LogFormat,
    config_file: Path,
    checkpoint_factory: Callable[[int | None], Path],
    onnx_cache: Path,
    tmp_path: Path,
) -> None:
    common = {"ROUTELLM_LOG_FORMAT": fmt, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    service_env = {
        **common,
        "ROUTELLM_CLASSIFIER_API_KEY": "hf-secret-token",
        "ROUTELLM_BERT_CACHE_DIR": str(onnx_cache),
    }
    service_args = ["-m", "classifier", "--port", "0", "--model", str(checkpoint_factory(0))]
    with Process(service_args, service_env) as service:
        assert service.wait_until_healthy()  # the service loads its model after it starts
        gateway_env = {
            **common,
            "ROUTELLM_CONFIG": str(config_file),
            "FAKE_UPSTREAM_KEY": "upstream-secret",
            "ROUTELLM_BERT_URL": f"{service.url}/predict",
            "HF_AUTH_TOKEN": "hf-secret-token",
            "ROUTELLM_API_KEYS": "client-key-123",
        }
        with Process(["-m", "gateway", "--port", "0"], gateway_env) as gateway:
            client = sdk.openai(gateway.url, "client-key-123")
            answer = client.chat.completions.create(model="router", messages=HI)  # type: ignore[arg-type]
            assert answer.choices[0].message.content == "Hello from ok:strong!"
            stream = client.chat.completions.create(model="router", messages=HI, stream=True)  # type: ignore[arg-type]
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            forged = "nope\r\nevent=chat status=200 model=strong"
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(model=forged, messages=HI)  # type: ignore[arg-type]
            with pytest.raises(openai.AuthenticationError):
                sdk.openai(gateway.url, "wrong-key-456").models.list()
            predicted = httpx.post(
                f"{service.url}/predict?token=query-secret",
                json={"inputs": "my secret question"},
                headers={"authorization": "Bearer hf-secret-token"},
            )
            assert predicted.status_code == 200
            gateway.signal(signal.SIGTERM)
            assert gateway.wait() == 0
        service.signal(signal.SIGTERM)
        service.wait()

    lines = service.lines + gateway.lines
    for line in lines:
        for secret in SECRETS:
            assert secret not in line
    gateway_records = [parse(fmt, line) for line in gateway.lines]
    service_records = [parse(fmt, line) for line in service.lines]
    loggers = {r["logger"] for r in gateway_records + service_records}
    assert {"uvicorn.error", "uvicorn.access", "routellm.gateway"} <= loggers

    chats = [
        r for r in gateway_records if r["logger"] == "routellm.gateway" and "chat" in r["message"]
    ]
    assert len(chats) == 3
    access = [r for r in service_records if r["logger"] == "uvicorn.access"]
    assert any("/predict" in r["message"] for r in access)
    if fmt == "json":
        assert [c["status"] for c in chats] == [200, 200, 404]
        assert [c["stream"] for c in chats] == [False, True, False]
        assert chats[0]["model"] == "strong"
        assert chats[0]["reason"] == "strong"
        assert chats[2]["requested"] == forged  # escaped by JSON, whole, on one line
        assert {(r["method"], r["path"], r["status"]) for r in access} >= {
            ("POST", "/predict", 200)
        }
    else:
        assert "status=404" in chats[2]["message"]


def test_a_request_line_carries_its_fields_and_request_id_at_the_top_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("json")
        log_request("json", {"event": "chat", "request_id": "req-1", "message": "x", "ms": 1.5})
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/v1/models?key=k-1", "1.1", 200
        )
    finally:
        root.handlers[:], root.level = saved
        logging.captureWarnings(False)
    request, access = (json.loads(line) for line in stream.getvalue().splitlines())
    assert request["logger"] == "routellm.gateway"
    assert request["message"] == "chat"
    assert (request["request_id"], request["ms"]) == ("req-1", 1.5)
    assert request["field_message"] == "x"  # a field never overwrites the line's own keys
    assert access["path"] == "/v1/models"
    assert "k-1" not in json.dumps(access)
