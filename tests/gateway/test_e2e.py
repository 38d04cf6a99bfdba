"""The gateway end to end: uvicorn on loopback, the official openai client, the tiny real
classifier, and a fake upstream standing for the remote LLMs."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import openai
import pytest

from tests.gateway.conftest import SDK
from tests.gateway.fake_upstream import FakeUpstream

Gateway = Callable[..., AbstractContextManager[str]]
MAPPING = json.dumps({"LABEL_0": "strong", "LABEL_1": "middle", "LABEL_2": "GPT3.5 Turbo"})
HI = [{"role": "user", "content": "How do I write a resignation letter?"}]


def test_sync_client_non_stream_routes_weak(sdk: SDK, gateway: Gateway) -> None:
    with gateway(label=2) as url:
        raw = sdk.openai(url).chat.completions.with_raw_response.create(model="router", messages=HI)
        answer = raw.parse()
    assert answer.choices[0].message.content == "Hello from ok:weak!"
    assert raw.headers["x-routellm-model"] == "weak"
    assert raw.headers["x-routellm-reason"] == "weak"
    assert raw.headers["x-routellm-label"] == "LABEL_2"
    assert float(raw.headers["x-routellm-score"]) < 0.01  # P(LABEL_0), the strong win rate
    assert raw.headers["x-request-id"] == "req-123"  # upstream headers are kept


def test_sync_client_stream_routes_strong(sdk: SDK, gateway: Gateway) -> None:
    with gateway(label=0) as url:
        stream = sdk.openai(url).chat.completions.create(model="router", messages=HI, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        headers = stream.response.headers
    assert text == "Hello from ok:strong!"
    assert headers["x-routellm-model"] == "strong"
    assert headers["x-routellm-reason"] == "strong"


async def test_async_client_stream_and_non_stream(gateway: Gateway) -> None:
    with gateway(label=0) as url:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as aclient:
            stream = await aclient.chat.completions.create(model="router", messages=HI, stream=True)
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            answer = await aclient.chat.completions.create(model="router", messages=HI)
    assert "".join(parts) == "Hello from ok:strong!"
    assert answer.choices[0].message.content == "Hello from ok:strong!"


@pytest.mark.parametrize(
    ("label", "env", "model", "reason"),
    [
        (0, {"ROUTELLM_MAPPING": MAPPING}, "strong", "mapped"),
        (1, {"ROUTELLM_MAPPING": MAPPING}, "middle", "mapped"),
        (2, {"ROUTELLM_MAPPING": MAPPING}, "GPT3.5 Turbo", "mapped"),
        (
            1,
            {"ROUTELLM_MAPPING": MAPPING, "ROUTELLM_THRESHOLD": "0.99999"},
            "weak",
            "below_threshold",
        ),
        (
            1,
            {
                "ROUTELLM_MAPPING": json.dumps({"LABEL_0": "strong"}),
                "ROUTELLM_FALLBACK_MODEL": "middle",
            },
            "middle",
            "unmapped",
        ),
        (0, {}, "strong", "strong"),
        (2, {}, "weak", "weak"),
        (0, {"ROUTELLM_THRESHOLD": "1.0"}, "weak", "weak"),
    ],
)
def test_router_rules(
    sdk: SDK, gateway: Gateway, label: int, env: dict[str, str], model: str, reason: str
) -> None:
    with gateway(label=label, **env) as url:
        raw = sdk.openai(url).chat.completions.with_raw_response.create(model="router", messages=HI)
    assert (raw.headers["x-routellm-model"], raw.headers["x-routellm-reason"]) == (model, reason)
    upstream_id = {"GPT3.5 Turbo": "gpt-3.5-turbo"}.get(model, model)
    assert raw.parse().choices[0].message.content == f"Hello from ok:{upstream_id}!"


@pytest.mark.parametrize(
    ("label", "name", "model"),
    [
        (0, "router-bert-0.5", "strong"),
        (2, "router-bert-0.5", "weak"),
        (2, "router-bert-0", "strong"),
    ],
)
def test_routellm_names(sdk: SDK, gateway: Gateway, label: int, name: str, model: str) -> None:
    with gateway(label=label, ROUTELLM_MAPPING=MAPPING) as url:
        raw = sdk.openai(url).chat.completions.with_raw_response.create(model=name, messages=HI)
    assert raw.headers["x-routellm-model"] == model
    assert raw.headers["x-routellm-reason"] == ("strong" if model == "strong" else "weak")


@pytest.mark.parametrize(
    "name", ["router-bert-abc", "router-bert-1.5", "router-bert-", "router-mf-0.3"]
)
def test_malformed_router_name_is_400(sdk: SDK, gateway: Gateway, name: str) -> None:
    with gateway() as url, pytest.raises(openai.BadRequestError) as info:
        sdk.openai(url).chat.completions.create(model=name, messages=HI)
    assert info.value.status_code == 400
    assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert info.value.body["param"] == "model"  # type: ignore[index]


def test_direct_model_is_not_classified(
    sdk: SDK, gateway: Gateway, upstream: tuple[FakeUpstream, str]
) -> None:
    with gateway(label=0) as url:
        raw = sdk.openai(url).chat.completions.with_raw_response.create(
            model="GPT3.5 Turbo", messages=HI
        )
    assert raw.headers["x-routellm-reason"] == "direct"
    assert raw.headers["x-routellm-label"] == "none"
    assert upstream[0].history[-1].body["model"] == "ok:gpt-3.5-turbo"


def test_list_content_and_no_text(sdk: SDK, gateway: Gateway) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with gateway(label=0) as url:
        c = sdk.openai(url)
        with_text = [
            {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}
        ]
        raw = c.chat.completions.with_raw_response.create(model="router", messages=with_text)
        assert raw.headers["x-routellm-reason"] == "strong"
        only_image = [{"role": "user", "content": [image]}]
        raw = c.chat.completions.with_raw_response.create(model="router", messages=only_image)
        assert (raw.headers["x-routellm-model"], raw.headers["x-routellm-reason"]) == (
            "weak",
            "no_text",
        )
        system_only = [{"role": "system", "content": "be brief"}]
        raw = c.chat.completions.with_raw_response.create(model="router", messages=system_only)
        assert raw.headers["x-routellm-reason"] == "no_text"


def test_route_endpoint_does_not_call_upstream(
    gateway: Gateway, upstream: tuple[FakeUpstream, str]
) -> None:
    fake, _ = upstream
    with gateway(label=1, ROUTELLM_MAPPING=MAPPING) as url:
        before = len(fake.history)
        decision = httpx.post(f"{url}/v1/route", json={"model": "router", "messages": HI}).json()
    assert len(fake.history) == before
    assert decision["model"] == "middle"
    assert decision["label"] == "LABEL_1"
    assert decision["reason"] == "mapped"
    assert set(decision["scores"]) == {"LABEL_0", "LABEL_1", "LABEL_2"}
    assert decision["score"] == pytest.approx(max(decision["scores"].values()))


def test_body_forwarded_untouched_but_model_and_auth(
    gateway: Gateway, upstream: tuple[FakeUpstream, str]
) -> None:
    fake, _ = upstream
    body: dict[str, Any] = {
        "model": "router",
        "messages": HI,
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "response_format": {"type": "json_object"},
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.25,
        "x_vendor_field": {"nested": [1, "two", None]},
    }
    with gateway(label=2) as url:
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json=body,
            headers={"authorization": "Bearer client-secret"},
        )
    assert response.status_code == 200
    seen = fake.history[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.body == {**body, "model": "ok:weak"}
    assert seen.headers["authorization"] == "Bearer upstream-secret"
    assert "client-secret" not in json.dumps(seen.headers)


def chuanhu_read(lines: list[str]) -> tuple[str, list[str]]:
    """Chuanhu's stream loop (OpenAIVision.py), as facts.md describes it: returns the text it
    shows and the lines it failed on."""
    text, bad = "", []
    for line in lines:
        if not line or line == ": keep-alive":
            continue
        try:
            chunk = json.loads(line[6:])
        except json.JSONDecodeError:
            bad.append(line)
            continue
        if not chunk["choices"]:
            continue
        choice = chunk["choices"][0]
        if "finish_reason" not in choice:
            continue
        if choice["finish_reason"] == "stop":
            break
        text += choice["delta"].get("content") or ""
    return text, bad


@pytest.mark.parametrize("behaviour", ["ok:x", "crlf", "split", "no-done"])
def test_raw_stream_framing_satisfies_strict_clients(
    gateway: Gateway, behaviour: str, config_file: Any
) -> None:
    model = {"ok:x": "strong"}.get(behaviour, behaviour)
    with (
        gateway() as url,
        httpx.stream(
            "POST",
            f"{url}/v1/chat/completions",
            json={"model": model, "messages": HI, "stream": True},
        ) as response,
    ):
        raw = response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    assert b"\r" not in raw
    events = raw.split(b"\n\n")
    assert events[-1] == b""
    assert events[-2] == b"data: [DONE]"
    for event in events[:-2]:
        assert event.startswith(b"data: ")
        assert b"\n" not in event
        for choice in json.loads(event[6:])["choices"]:
            assert "finish_reason" in choice
    text, bad = chuanhu_read(raw.decode().split("\n"))
    assert set(bad) <= {"data: [DONE]"}  # the one line Chuanhu tolerates failing on
    expected = {"strong": "ok:strong"}.get(model, model)
    assert text == f"Hello from {expected}!"


@pytest.mark.parametrize(
    ("model", "status", "fragment"),
    [
        ("status-400", 400, "fake upstream says 400"),
        ("status-401", 401, "fake upstream says 401"),
        ("status-500", 502, "fake upstream says 500"),
        ("html-502", 502, "<html>Bad gateway</html>"),
    ],
)
def test_upstream_errors_in_openai_shape(
    gateway: Gateway, model: str, status: int, fragment: str
) -> None:
    with gateway() as url:
        response = httpx.post(f"{url}/v1/chat/completions", json={"model": model, "messages": HI})
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert fragment in error["message"]
    assert error["code"] == ("fake" if status < 500 else "upstream_error")
    assert response.headers["x-routellm-reason"] == "direct"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'{"messages": []}', "model"),
        (b'{"model": "router"}', "messages"),
        (b'{"model": "router", "messages": "hi"}', "messages"),
        (b'{"model": "router", "messages": []}', "messages"),
        (
            b'{"model": "router", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            "stream",
        ),
    ],
)
def test_invalid_requests_are_400(gateway: Gateway, body: bytes, param: str | None) -> None:
    with gateway() as url:
        response = httpx.post(
            f"{url}/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


def test_unknown_model_is_404_and_models_lists_served(sdk: SDK, gateway: Gateway) -> None:
    with gateway() as url:
        c = sdk.openai(url)
        with pytest.raises(openai.NotFoundError) as info:
            c.chat.completions.create(model="gpt-9", messages=HI)
        listed = [m.id for m in c.models.list()]
        health = httpx.get(f"{url}/health")
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert listed[0] == "router"
    assert {"strong", "weak", "GPT3.5 Turbo"} <= set(listed)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"


def test_metrics_count_requests_by_decision(sdk: SDK, gateway: Gateway) -> None:
    with gateway(label=2) as url:
        sdk.openai(url).chat.completions.create(model="router", messages=HI)
        sdk.openai(url).chat.completions.create(model="strong", messages=HI)
        text = httpx.get(f"{url}/metrics").text
    assert 'routellm_requests_total{model="weak",reason="weak",status="200"} 1' in text
    assert 'routellm_requests_total{model="strong",reason="direct",status="200"} 1' in text
    assert "routellm_classify_seconds_count 1" in text
    assert "routellm_inflight_requests 0" in text
    assert "routellm_classifier_forward_passes" in text
