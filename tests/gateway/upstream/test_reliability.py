"""Reliability and security rules, each through the real app on loopback: fallback before the
first byte only, timeouts, cancellation on disconnect, circuit breaking, limits, client keys."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import openai
import pytest

from gateway.app import create_app
from gateway.settings.load import Settings
from tests.gateway.conftest import SDK
from tests.gateway.fake_upstream import FakeUpstream
from tests.servers import serve, wait_for

Gateway = Callable[..., AbstractContextManager[str]]
HI = [{"role": "user", "content": "hello there"}]
Upstream = tuple[FakeUpstream, str]


def post(
    url: str, model: str, *, stream: bool = False, timeout: float = 10, **kw: Any
) -> httpx.Response:
    body = {"model": model, "messages": HI, "stream": stream}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=timeout, **kw)


@pytest.mark.parametrize(
    "failing", ["status-500", "status-503", "status-429", "html-502", "hang", "redirect"]
)
@pytest.mark.parametrize("stream", [False, True])
def test_routed_request_falls_back_before_first_byte(
    gateway: Gateway, failing: str, stream: bool
) -> None:
    with gateway(label=0, ROUTELLM_STRONG_MODEL=failing, ROUTELLM_UPSTREAM_TIMEOUT="0.5") as url:
        response = post(url, "router", stream=stream)
    assert response.status_code == 200
    assert response.headers["x-routellm-model"] == "weak"
    assert response.headers["x-routellm-reason"] == "upstream_fallback"
    assert "Hello" in response.text
    assert "ok:weak" in response.text


def test_connection_refused_falls_back(gateway: Gateway) -> None:
    env = {
        "ROUTELLM_UPSTREAM_BASE_URL": "http://127.0.0.1:1/v1",
        "ROUTELLM_STRONG_MODEL": "nowhere",
    }
    with gateway(label=0, **env) as url:
        routed = post(url, "router")
        direct = post(url, "nowhere")
    assert routed.status_code == 200
    assert routed.headers["x-routellm-reason"] == "upstream_fallback"
    assert direct.status_code == 502
    assert direct.json()["error"]["type"] == "upstream_error"


@pytest.mark.parametrize(
    ("model", "status"), [("status-500", 502), ("hang", 504), ("status-503", 502)]
)
def test_model_named_by_client_is_never_swapped(gateway: Gateway, model: str, status: int) -> None:
    with gateway(ROUTELLM_UPSTREAM_TIMEOUT="0.5") as url:
        response = post(url, model)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert response.headers["x-routellm-reason"] == "direct"


def test_client_errors_are_not_retried(gateway: Gateway, upstream: Upstream) -> None:
    fake, _ = upstream
    with gateway(label=0, ROUTELLM_STRONG_MODEL="status-400") as url:
        before = len(fake.history)
        response = post(url, "router")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "fake upstream says 400"
    assert len(fake.history) == before + 1  # no second try


def test_retry_after_reaches_the_client(sdk: SDK, gateway: Gateway) -> None:
    with gateway() as url:
        response = post(url, "status-429")
        with pytest.raises(openai.RateLimitError) as info:
            sdk.openai(url, "k").chat.completions.create(model="status-429", messages=HI)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert info.value.response.headers["retry-after"] == "7"


@pytest.mark.parametrize("model", ["cut", "stall"])
def test_failure_after_first_byte_ends_stream_with_error_and_no_retry(
    sdk: SDK, gateway: Gateway, upstream: Upstream, model: str
) -> None:
    fake, _ = upstream
    with gateway(label=0, ROUTELLM_STRONG_MODEL=model, ROUTELLM_UPSTREAM_TIMEOUT="0.5") as url:
        before = len(fake.history)
        response = post(url, "router", stream=True)
        client = sdk.openai(url, "k")
        chunks = client.chat.completions.create(model=model, messages=HI, stream=True)
        with pytest.raises(openai.APIError):
            list(chunks)
    assert response.status_code == 200
    assert response.headers["x-routellm-model"] == model
    events = response.text.split("\n\n")
    assert "[DONE]" not in response.text
    assert json.loads(events[-2][6:])["error"]["message"]
    assert "Hello" in response.text  # what arrived before the failure reached the client
    assert len(fake.history) == before + 2  # the routed one and the direct one, no fallback


def test_slow_first_byte_within_timeout_is_fine(gateway: Gateway) -> None:
    with gateway(ROUTELLM_UPSTREAM_TIMEOUT="5") as url:
        assert post(url, "slow-first").status_code == 200
    with gateway(ROUTELLM_UPSTREAM_TIMEOUT="0.5") as url:
        assert post(url, "slow-first").status_code == 504


def test_hung_upstream_does_not_block_others(gateway: Gateway) -> None:
    with gateway(ROUTELLM_UPSTREAM_TIMEOUT="3") as url:
        hung = threading.Thread(target=post, args=(url, "hang"))
        hung.start()
        time.sleep(0.2)
        started = time.monotonic()
        assert post(url, "strong").status_code == 200
        assert time.monotonic() - started < 1.0
        hung.join()


@pytest.mark.parametrize("stream", [False, True])
def test_disconnect_before_first_byte_closes_upstream(
    gateway: Gateway, upstream: Upstream, stream: bool
) -> None:
    fake, _ = upstream
    with gateway() as url:
        cancelled = fake.cancelled
        with pytest.raises(httpx.ReadTimeout):
            post(url, "hang", stream=stream, timeout=0.3)
        assert wait_for(lambda: fake.cancelled == cancelled + 1, 1.0)


def test_disconnect_mid_stream_closes_upstream(
    sdk: SDK, gateway: Gateway, upstream: Upstream
) -> None:
    fake, _ = upstream
    with gateway(ROUTELLM_UPSTREAM_TIMEOUT="30") as url:
        cancelled = fake.cancelled
        client = sdk.openai(url, "k")
        stream = client.chat.completions.create(model="stall", messages=HI, stream=True)
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
        stream.close()
        assert wait_for(lambda: fake.cancelled == cancelled + 1, 1.0)


class HangingClassifier:
    """A classifier service that never answers, and notices when its caller leaves."""

    def __init__(self) -> None:
        self.requests = 0
        self.abandoned = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        while (await receive())["type"] != "http.disconnect":
            pass
        self.abandoned += 1


@pytest.fixture
def hanging_classifier() -> Iterator[tuple[HangingClassifier, str]]:
    app = HangingClassifier()
    with serve(app, lifespan="off") as url:
        yield app, url


def test_remote_classifier_timeout_routes_to_fallback(
    make_settings: Callable[..., Settings], hanging_classifier: tuple[HangingClassifier, str]
) -> None:
    _, bert = hanging_classifier
    settings = make_settings(ROUTELLM_BERT_URL=f"{bert}/predict", ROUTELLM_BERT_TIMEOUT="0.3")
    with serve(create_app(settings)) as url:
        response = post(url, "router")
        health = httpx.get(f"{url}/health")
    assert response.status_code == 200
    assert response.headers["x-routellm-reason"] == "classifier_error"
    assert response.headers["x-routellm-model"] == "weak"
    assert health.status_code == 200


def test_disconnect_while_classifying_cancels_everything(
    make_settings: Callable[..., Settings],
    hanging_classifier: tuple[HangingClassifier, str],
    upstream: Upstream,
) -> None:
    app, bert = hanging_classifier
    fake, _ = upstream
    settings = make_settings(ROUTELLM_BERT_URL=f"{bert}/predict", ROUTELLM_BERT_TIMEOUT="30")
    with serve(create_app(settings)) as url:
        before = len(fake.history)
        with pytest.raises(httpx.ReadTimeout):
            post(url, "router", timeout=0.3)
        assert wait_for(lambda: app.abandoned == 1, 1.0)
    assert len(fake.history) == before


def test_circuit_breaker_skips_failing_upstream_then_probes(
    gateway: Gateway, upstream: Upstream
) -> None:
    fake, url_up = upstream
    env = {
        # The failing model lives on its own upstream ("default"), so its breaker is its own.
        "ROUTELLM_UPSTREAM_BASE_URL": f"{url_up}/v1",
        "ROUTELLM_STRONG_MODEL": "status-503:flaky",
        "ROUTELLM_BREAKER_FAILURES": "2",
        "ROUTELLM_BREAKER_COOLDOWN": "0.5",
    }

    def calls() -> int:
        return sum(seen.body.get("model") == "status-503:flaky" for seen in fake.history)

    with gateway(label=0, **env) as url:
        before = calls()
        for _ in range(4):
            response = post(url, "router")
            assert response.headers["x-routellm-reason"] == "upstream_fallback"
        assert calls() == before + 2  # after two failures the upstream is skipped
        direct = post(url, "status-503:flaky")
        assert direct.status_code == 502
        assert direct.json()["error"]["code"] == "upstream_unavailable"
        assert int(direct.headers["retry-after"]) >= 1
        time.sleep(0.6)
        post(url, "router")
        assert calls() == before + 3  # probed again after the cool-down


def test_one_models_timeouts_leave_its_neighbours_and_the_fallback_serving(
    gateway: Gateway,
) -> None:
    env = {
        "ROUTELLM_STRONG_MODEL": "hang",  # shares the "fake" upstream with weak and middle
        "ROUTELLM_UPSTREAM_TIMEOUT": "0.3",
        "ROUTELLM_BREAKER_FAILURES": "2",
        "ROUTELLM_BREAKER_COOLDOWN": "30",
    }
    with gateway(label=0, **env) as url:
        timeouts = [post(url, "hang").status_code for _ in range(2)]
        skipped = post(url, "hang")
        neighbour = post(url, "middle")
        routed = post(url, "router", stream=True)
        health = httpx.get(f"{url}/health").json()
    assert timeouts == [504, 504]
    assert skipped.status_code == 502
    assert skipped.json()["error"]["code"] == "upstream_unavailable"
    assert "model 'hang'" in skipped.json()["error"]["message"]
    assert neighbour.status_code == 200
    assert routed.status_code == 200
    assert routed.headers["x-routellm-model"] == "weak"
    assert routed.headers["x-routellm-reason"] == "upstream_fallback"
    assert routed.text.endswith("data: [DONE]\n\n")
    assert health["breakers"] == {"hosts": [], "deployments": ["fake/hang"]}


def test_a_refused_connection_opens_the_whole_host(gateway: Gateway) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # closed again below: connections are refused
    env = {
        "ROUTELLM_UPSTREAM_BASE_URL": f"http://127.0.0.1:{dead}/v1",
        "ROUTELLM_MODELS": "dead-a,dead-b",
        "ROUTELLM_BREAKER_FAILURES": "2",
        "ROUTELLM_BREAKER_COOLDOWN": "30",
    }
    with gateway(**env) as url:
        refused = [post(url, "dead-a").json()["error"]["message"] for _ in range(2)]
        other_model = post(url, "dead-b")
        elsewhere = post(url, "middle")
        health = httpx.get(f"{url}/health").json()
    assert all("failed: ClientConnectorError: Cannot connect" in message for message in refused)
    assert other_model.status_code == 502
    assert other_model.json()["error"]["code"] == "upstream_unavailable"
    assert other_model.json()["error"]["message"].startswith("upstream 'default' is failing")
    assert elsewhere.status_code == 200
    assert health["breakers"] == {"hosts": ["default"], "deployments": []}


def test_body_too_large_is_413(gateway: Gateway) -> None:
    with gateway(ROUTELLM_MAX_BODY_BYTES="1000") as url:
        big = [{"role": "user", "content": "x" * 2000}]
        response = httpx.post(
            f"{url}/v1/chat/completions", json={"model": "router", "messages": big}
        )
        small = post(url, "router")
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert small.status_code == 200


def test_too_many_messages_is_400(gateway: Gateway) -> None:
    with gateway(ROUTELLM_MAX_MESSAGES="3") as url:
        body = {"model": "router", "messages": HI * 4}
        response = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


def test_concurrency_cap_answers_429(gateway: Gateway) -> None:
    with gateway(ROUTELLM_MAX_CONCURRENCY="1") as url:
        slow = threading.Thread(target=post, args=(url, "slow-first"))
        slow.start()
        time.sleep(0.3)
        response = post(url, "strong")
        slow.join()
        after = post(url, "strong")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert after.status_code == 200


def test_client_keys(sdk: SDK, gateway: Gateway) -> None:
    with gateway(ROUTELLM_API_KEYS="key-one, key-two") as url:
        missing = post(url, "strong")
        wrong = post(url, "strong", headers={"authorization": "Bearer key-three"})
        good = post(url, "strong", headers={"authorization": "Bearer key-two"})
        with pytest.raises(openai.AuthenticationError):
            sdk.openai(url, "nope").models.list()
        models = sdk.openai(url, "key-one").models.list()
        health = httpx.get(f"{url}/health")
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert good.status_code == 200
    assert "router" in [m.id for m in models]
    assert health.status_code == 200


def test_logs_hold_no_keys_no_content_and_cannot_be_forged(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="routellm.gateway")
    secret_text = "my secret question"
    with gateway(ROUTELLM_API_KEYS="client-key-123") as url:
        auth = {"authorization": "Bearer client-key-123"}
        body = {"model": "router", "messages": [{"role": "user", "content": secret_text}]}
        httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth)
        forged = {"model": "nope\r\nevent=chat status=200 model=strong", "messages": HI}
        httpx.post(f"{url}/v1/chat/completions", json=forged, headers=auth)
    lines = [r.getMessage() for r in caplog.records if r.name == "routellm.gateway"]
    assert len(lines) == 2
    for line in lines:
        assert "\n" not in line
        assert "\r" not in line
        assert secret_text not in line
        assert "client-key-123" not in line
        assert "upstream-secret" not in line
    assert "status=404" in lines[1]


def test_breaker_unit_rules() -> None:
    from gateway.upstream.breakers import Breaker

    breaker = Breaker(failures=2, cooldown=10)
    assert breaker.allow(0)
    breaker.record(ok=False, now=0)
    assert breaker.allow(0)
    breaker.record(ok=False, now=0)
    assert not breaker.allow(5)
    assert breaker.allow(11)  # one probe after the cool-down...
    assert not breaker.allow(11)  # ...and only one
    breaker.record(ok=True, now=11)
    assert breaker.allow(11)


async def test_event_loop_is_free_while_classifying(classifiers: dict[int, Any]) -> None:
    """The forward pass runs on the batcher's thread: the loop keeps ticking meanwhile."""
    clf = classifiers[0]
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    ticker = asyncio.create_task(tick())
    await clf.classify([f"long text {i} " * 200 for i in range(16)])
    ticker.cancel()
    assert ticks > 3


def test_breakers_count_each_failure_where_it_belongs() -> None:
    from gateway.upstream.breakers import Breakers

    breakers = Breakers(failures=1, cooldown=10)
    breakers.record("up", "a", "deployment", now=0)
    assert breakers.check("up", "a", now=1) is not None
    assert breakers.check("up", "b", now=1) is None  # a neighbour on the same upstream
    breakers.record("up", "b", "host", now=1)
    blocked = breakers.check("up", "c", now=2)
    assert blocked is not None
    assert blocked.scope == "host"
    assert breakers.open(now=2) == {"hosts": ["up"], "deployments": ["up/a"]}
    assert breakers.check("up", "c", now=12) is None  # the host's probe after its cool-down
    breakers.record("up", "c", None, now=12)
    assert breakers.open(now=12) == {"hosts": [], "deployments": []}
