"""A hostile upstream on loopback: an event that never ends, a stream that drips bytes but no
event, an oversized answer. Each is cut at its bound, the upstream request is closed, and the
client gets the API's error (or the fallback model's answer, before the first byte)."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from tests.gateway.fake_upstream import FakeUpstream
from tests.servers import wait_for

Gateway = Callable[..., AbstractContextManager[str]]
Upstream = tuple[FakeUpstream, str]
HI = [{"role": "user", "content": "hello there"}]
LIMITS = {
    "ROUTELLM_MAX_EVENT_BYTES": str(1024 * 1024),
    "ROUTELLM_MAX_RESPONSE_BYTES": str(1024 * 1024),
    "ROUTELLM_UPSTREAM_TIMEOUT": "1",
}


def post(url: str, model: str, *, stream: bool) -> httpx.Response:
    body = {"model": model, "messages": HI, "stream": stream}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def last_event(response: httpx.Response) -> dict[str, Any]:
    events = [e for e in response.text.split("\n\n") if e]
    payload: dict[str, Any] = json.loads(events[-1].removeprefix("data: "))
    return payload


@pytest.mark.parametrize(
    ("model", "status", "needle"),
    [
        ("endless-event", 502, "an event over 1048576 bytes (ROUTELLM_MAX_EVENT_BYTES)"),
        ("drip", 504, "did not answer in time"),
    ],
)
def test_a_stream_past_its_bounds_ends_with_an_error_event_and_closes_upstream(
    gateway: Gateway, upstream: Upstream, model: str, status: int, needle: str
) -> None:
    fake, _ = upstream
    with gateway(**LIMITS) as url:
        cancelled = fake.cancelled
        response = post(url, model, stream=True)
        assert response.status_code == 200  # the stream had started
        assert "Hello" in response.text  # what came before the bad part reached the client
        assert "[DONE]" not in response.text
        error = last_event(response)["error"]
        assert needle in error["message"]
        assert set(error) == {"message", "type", "param", "code"}
        assert wait_for(lambda: fake.cancelled == cancelled + 1)
        metrics = httpx.get(f"{url}/metrics").text
    assert f'routellm_requests_total{{model="{model}",reason="direct",status="{status}"}} 1' in (
        metrics
    )


def test_an_oversized_answer_is_a_502_for_a_named_model(gateway: Gateway) -> None:
    with gateway(**LIMITS) as url:
        response = post(url, "huge-body", stream=False)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_response_too_large"
    assert "ROUTELLM_MAX_RESPONSE_BYTES" in error["message"]


@pytest.mark.parametrize(("model", "stream"), [("huge-body", False), ("endless-first", True)])
def test_a_routed_request_moves_to_the_fallback_before_the_first_byte(
    gateway: Gateway, upstream: Upstream, model: str, stream: bool
) -> None:
    fake, _ = upstream
    with gateway(label=0, ROUTELLM_STRONG_MODEL=model, **LIMITS) as url:
        cancelled = fake.cancelled
        response = post(url, "router", stream=stream)
        assert wait_for(lambda: fake.cancelled >= cancelled + int(stream))
    assert response.status_code == 200
    assert response.headers["x-routellm-reason"] == "upstream_fallback"
    assert response.headers["x-routellm-model"] == "weak"
    assert "ok:weak" in response.text  # the fallback model's answer


def test_a_named_model_with_an_endless_first_event_gets_a_502(gateway: Gateway) -> None:
    with gateway(**LIMITS) as url:
        response = post(url, "endless-first", stream=True)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_response_too_large"
