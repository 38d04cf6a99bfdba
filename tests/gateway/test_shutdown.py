"""The SIGTERM drain, through the real `routellm-gateway` process: a slow stream in flight when the
signal arrives, `/health` while draining, a new request refused, the stream finished (or cut after
the grace) and the exit status."""

from __future__ import annotations

import json
import signal
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
