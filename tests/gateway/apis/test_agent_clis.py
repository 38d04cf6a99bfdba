"""The real Claude Code and Codex CLIs (pinned, installed from npm by `agent_clis`) through the
gateway on loopback, against a scripted agent upstream (`agent_upstream.py`): text, streamed
JSON, a router and a direct model, and a tool turn each."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.app import create_app
from gateway.settings.load import load_settings
from tests.gateway.apis import agent_clis
from tests.gateway.scripted import ScriptedClassifier
from tests.servers import serve

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    return agent_clis.install_clis()


@pytest.fixture
def agent_upstream(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The scripted upstream in its own process: its base URL and its request log."""
    log, port_file = tmp_path / "requests.jsonl", tmp_path / "port"
    script = Path(__file__).parent / "agent_upstream.py"
    process = subprocess.Popen([sys.executable, str(script), str(log), str(port_file)])
    try:
        deadline = time.monotonic() + 10
        while not (port_file.exists() and port_file.read_text()):
            assert time.monotonic() < deadline, "the agent upstream did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text()}", log
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def gateway_url(tmp_path: Path, agent_upstream: tuple[str, Path]) -> Iterator[str]:
    upstream, _ = agent_upstream
    doc = {
        "upstreams": {
            "claude": {"base_url": f"{upstream}/v1", "api_key": "up", "kind": "anthropic"},
            "openai": {"base_url": f"{upstream}/v1", "api_key": "up"},
        },
        "models": {
            "claude-strong": {"upstream": "claude"},
            "claude-weak": {"upstream": "claude"},
            "gpt-strong": {"upstream": "openai"},
            "gpt-weak": {"upstream": "openai"},
        },
        "routing": {"strong": "claude-strong", "weak": "claude-weak", "threshold": 0.5},
        "routers": {"codex-router": {"strong": "gpt-strong", "weak": "gpt-weak"}},
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc))
    with serve(create_app(load_settings({}, str(path)), classifier=ScriptedClassifier())) as url:
        yield url


def decisions(url: str) -> list[dict[str, Any]]:
    time.sleep(0.5)  # the ledger writes in batches every 0.25 s
    rows: list[dict[str, Any]] = httpx.get(f"{url}/v1/decisions").json()["data"]
    return rows[::-1]


@pytest.mark.parametrize("model", ["router", "claude-weak"])
@pytest.mark.parametrize("stream_json", [False, True])
def test_claude_code_answers_through_the_gateway(
    bin_dir: Path, gateway_url: str, tmp_path: Path, model: str, stream_json: bool
) -> None:
    env = agent_clis.claude_env(gateway_url, tmp_path / "home")
    argv = agent_clis.claude_argv(bin_dir, "What is 2+2?", model, stream_json=stream_json)
    done = agent_clis.run_cli(argv, env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    if stream_json:
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["type"] == "result"
        assert result["result"].strip() == "4"
    else:
        assert done.stdout.strip() == "4"
    rows = [row for row in decisions(gateway_url) if row["endpoint"] == "messages"]
    assert rows
    assert rows[-1]["requested"] == model


def test_claude_code_tool_turn_stays_in_one_conversation_on_one_model(
    bin_dir: Path, gateway_url: str, tmp_path: Path, agent_upstream: tuple[str, Path]
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "data.txt").write_text("the secret is 7\n")
    prompt = f"p=0.9 Please read the file. READFILE:{project / 'data.txt'}"
    env = agent_clis.claude_env(gateway_url, tmp_path / "home")
    done = agent_clis.run_cli(agent_clis.claude_argv(bin_dir, prompt, "router"), env, project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FINAL" in done.stdout
    assert "the secret is 7" in done.stdout
    rows = [row for row in decisions(gateway_url) if row["endpoint"] == "messages"]
    turn = rows[-2:]
    assert {row["conversation"] for row in turn} == {turn[0]["conversation"]}
    assert [row["model"] for row in turn] == ["claude-strong", "claude-strong"]
    assert [row["reason"] for row in turn] == ["strong", "pinned"]
    assert [row["classified_from"] for row in turn] == ["user_text", "previous_turn"]
    # What the router read was the user's prompt, not Claude Code's reminders.
    assert turn[0]["classified_chars"] == len(prompt)
    _, log = agent_upstream
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(
        entry["path"] == "/v1/messages?beta=true" for entry in seen if "messages" in entry["path"]
    )


@pytest.mark.parametrize("model", ["codex-router", "gpt-weak"])
@pytest.mark.parametrize("json_output", [False, True])
def test_codex_answers_through_the_gateway(
    bin_dir: Path, gateway_url: str, tmp_path: Path, model: str, json_output: bool
) -> None:
    env = agent_clis.codex_home(f"{gateway_url}/v1", tmp_path / "home", model)
    argv = agent_clis.codex_argv(bin_dir, "What is 2+2?", json_output=json_output)
    done = agent_clis.run_cli(argv, env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    if json_output:
        items = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        texts = [
            event["item"].get("text")
            for event in items
            if event.get("type") == "item.completed"
            and event["item"].get("type") == "agent_message"
        ]
        assert texts == ["4"]
    else:
        assert done.stdout.strip().endswith("4")
    rows = [row for row in decisions(gateway_url) if row["endpoint"] == "responses"]
    assert rows[-1]["requested"] == model


def test_codex_tool_turn_stays_on_one_model(
    bin_dir: Path, gateway_url: str, tmp_path: Path
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "data.txt").write_text("the secret is 7\n")
    env = agent_clis.codex_home(f"{gateway_url}/v1", tmp_path / "home", "codex-router")
    prompt = "p=0.2 Show the file. RUNCMD:cat data.txt"
    done = agent_clis.run_cli(agent_clis.codex_argv(bin_dir, prompt), env, project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FINAL" in done.stdout
    rows = [row for row in decisions(gateway_url) if row["endpoint"] == "responses"][-2:]
    assert {row["conversation"] for row in rows} == {rows[0]["conversation"]}
    assert [row["model"] for row in rows] == ["gpt-weak", "gpt-weak"]
    assert [row["classified_from"] for row in rows] == ["user_text", "previous_turn"]
    assert rows[0]["classified_chars"] == len(prompt)
