"""The SIGTERM drain, through the real `routellm-gateway` process: a slow stream in flight when the
signal arrives, `/health` while draining, a new request refused, the stream finished (or cut after
the grace) and the exit status; requests still waiting for their upstream's first byte when the
grace ends answered in their API's shape, with their ledger row."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.classifier.fake_servers import FakeRemote
from tests.gateway.conftest import SDK
from tests.gateway.fake_upstream import FakeUpstream
from tests.processes import Process
from tests.servers import serve, wait_for

Upstream = tuple[FakeUpstream, str]
HI = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="session")
def remote_classifier() -> Iterator[str]:
    """A remote classifier on loopback, so the gateway process loads no model."""
    with serve(FakeRemote()) as url:
        yield f"{url}/tei/predict"


@pytest.fixture
def gateway_env(config_file: Path, remote_classifier: str) -> dict[str, str]:
    return {
        "ROUTELLM_CONFIG": str(config_file),
        "FAKE_UPSTREAM_KEY": "upstream-secret",
        "ROUTELLM_BERT_URL": remote_classifier,
    }


def stream_events(url: str) -> Iterator[str]:
    """The `data:` payloads of a streamed chat completion from the slow upstream."""
    body = {"model": "slow-stream", "messages": HI, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                assert line.startswith("data: ")
                yield line[len("data: ") :]


def test_sigterm_drains_a_stream_in_flight_and_exits_0(
    sdk: SDK, gateway_env: dict[str, str]
) -> None:
    with Process(["-m", "gateway", "--port", "0"], gateway_env) as gateway:
        events = stream_events(gateway.url)
        first = json.loads(next(events))
        assert first["object"] == "chat.completion.chunk"
        gateway.signal(signal.SIGTERM)

        def draining() -> bool:
            return httpx.get(f"{gateway.url}/health").status_code == 503

        assert wait_for(draining, 10)
        health = httpx.get(f"{gateway.url}/health").json()
        assert health["status"] == "draining"
        client = sdk.openai(gateway.url, "-")
        with pytest.raises(openai.InternalServerError) as refused:
            client.chat.completions.create(model="strong", messages=HI)  # type: ignore[arg-type]
        assert refused.value.status_code == 503
        assert refused.value.code == "shutting_down"
        assert refused.value.response.headers["x-routellm-request-id"].startswith("req_")

        rest = list(events)
        assert rest[-1] == "[DONE]"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in rest[:-1])
        assert text == "Hello from slow-stream!"
        assert gateway.wait() == 0
    assert any("draining" in line for line in gateway.lines)


def test_after_the_grace_a_stream_is_cut_with_an_error_event(
    gateway_env: dict[str, str], upstream: Upstream
) -> None:
    fake, _ = upstream
    cancelled = fake.cancelled
    env = {**gateway_env, "ROUTELLM_SHUTDOWN_GRACE": "0.2"}
    with Process(["-m", "gateway", "--port", "0"], env) as gateway:
        events = stream_events(gateway.url)
        next(events)
        gateway.signal(signal.SIGTERM)
        rest = list(events)
        assert gateway.wait() == 0
    assert "[DONE]" not in rest
    error = json.loads(rest[-1])["error"]
    assert error["code"] == "shutting_down"
    assert error["type"] == "server_error"
    assert "ROUTELLM_SHUTDOWN_GRACE" in error["message"]
    assert wait_for(lambda: fake.cancelled == cancelled + 1, 10)  # the upstream request was closed


def test_an_idle_gateway_exits_0_at_once(gateway_env: dict[str, str]) -> None:
    with Process(["-m", "gateway", "--port", "0"], gateway_env) as gateway:
        assert httpx.get(f"{gateway.url}/health").json()["status"] == "ok"
        gateway.signal(signal.SIGINT)
        assert gateway.wait(timeout=20) == 0


def test_after_the_grace_requests_waiting_for_a_first_byte_get_a_503_and_a_ledger_row(
    gateway_env: dict[str, str], upstream: Upstream, tmp_path: Path
) -> None:
    """A non-streamed call and a stream not started yet, both on a hung upstream: at the grace's
    end each gets 503 `shutting_down` in the OpenAI shape with its request id, not uvicorn's
    plain-text 500, and the ledger keeps a row for each."""
    fake, _ = upstream
    ledger = tmp_path / "ledger.db"
    env = {**gateway_env, "ROUTELLM_SHUTDOWN_GRACE": "0.5", "ROUTELLM_LEDGER": str(ledger)}
    answers: dict[bool, httpx.Response] = {}
    with Process(["-m", "gateway", "--port", "0"], env) as gateway:

        def call(stream: bool) -> None:
            body = {"model": "hang", "messages": HI, "stream": stream}
            url = f"{gateway.url}/v1/chat/completions"
            answers[stream] = httpx.post(url, json=body, timeout=30)

        calls = [threading.Thread(target=call, args=(stream,)) for stream in (False, True)]
        seen = len(fake.history)
        for thread in calls:
            thread.start()
        assert wait_for(lambda: len(fake.history) == seen + 2, 10)  # both wait on the upstream
        gateway.signal(signal.SIGTERM)
        for thread in calls:
            thread.join(30)
        assert gateway.wait() == 0
    ids = []
    for stream, answer in answers.items():
        assert answer.status_code == 503, (stream, answer.text)
        assert answer.headers["content-type"].startswith("application/json")
        error = answer.json()["error"]
        assert error["code"] == "shutting_down"
        assert error["type"] == "server_error"
        assert "ROUTELLM_SHUTDOWN_GRACE" in error["message"]
        ids.append(answer.headers["x-routellm-request-id"])
    with sqlite3.connect(ledger) as db:
        rows = dict(db.execute("SELECT id, status FROM routellm_decisions").fetchall())
    assert {rows.get(i) for i in ids} == {503}
    assert not any("Exception in ASGI application" in line for line in gateway.lines)


def test_a_connection_accepted_at_the_end_of_the_drain_is_answered_not_dropped(
    gateway_env: dict[str, str],
) -> None:
    """A client that connected just before the last request finished, and sends its request a
    moment later, gets 503 `shutting_down`, not a closed connection: the listener closes first,
    and accepted connections get a moment to be read."""
    with Process(["-m", "gateway", "--port", "0"], gateway_env) as gateway:
        host, port = gateway.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            gateway.signal(signal.SIGTERM)
            assert wait_for(lambda: any("draining" in line for line in gateway.lines), 10)
            time.sleep(0.2)  # past the drain's first tick with nothing in flight
            body = json.dumps({"model": "strong", "messages": HI}).encode()
            conn.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json"
                b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            answer = b""
            while chunk := conn.recv(65536):  # to the close that follows the answer
                answer += chunk
        assert gateway.wait() == 0
    assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
    assert b"shutting_down" in answer
