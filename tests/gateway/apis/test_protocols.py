"""The Responses and Anthropic Messages APIs, and the passthrough ones, through the real app
under uvicorn with the official `openai` and `anthropic` SDKs, unchanged, against the fake
upstream: routed and direct names, stream and not, fallback, breakers, disconnects, errors in
each API's own shape, and `previous_response_id` reaching the upstream that made it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import yaml

from classifier.base import Scores
from gateway.app import create_app
from gateway.settings.load import load_settings
from tests.gateway.conftest import SDK
from tests.gateway.fake_upstream import FakeUpstream
from tests.servers import serve, wait_for

Upstream = tuple[FakeUpstream, str]
Gateway = Callable[..., AbstractContextManager[str]]
LABELS = ("LABEL_0", "LABEL_1", "LABEL_2")
HARD = "Prove that there are infinitely many primes (hard)"
EASY = "thanks!"


class ScriptedClassifier:
    """The strong model wins (P(LABEL_0) = 0.9) for texts that say 'hard', else the weak one."""

    name = "scripted"

    async def classify(self, texts: Sequence[str]) -> list[Scores]:
        return [
            Scores(LABELS, (0.9, 0.05, 0.05) if "hard" in t else (0.05, 0.05, 0.9)) for t in texts
        ]

    async def health(self) -> dict[str, object]:
        return {"status": "ok"}

    async def aclose(self) -> None:
        return None


@pytest.fixture
def gateway(tmp_path: Path, upstream: Upstream) -> Gateway:
    """`with gateway(anthropic_routing=False, **env) as url`: two OpenAI upstreams (keys a, b)
    and one Anthropic upstream on the fake; the router chooses among OpenAI models, or among
    Anthropic ones."""
    _, url = upstream

    @contextmanager
    def run(anthropic_routing: bool = False, **env: str) -> Iterator[str]:
        openai_models = {
            "strong": "a",
            "weak": "b",
            "status-503": "a",
            "stall": "a",
            "no-done": "a",
            "embed": "a",
        }
        models: dict[str, Any] = {
            name: {"upstream": up, "model": f"ok:{name}" if name in ("strong", "weak") else name}
            for name, up in openai_models.items()
        }
        for name in ("claude-strong", "claude-weak"):
            models[name] = {"upstream": "claude", "model": f"ok:{name}"}
        models["claude-503"] = {"upstream": "claude", "model": "status-503"}
        models["claude-400"] = {"upstream": "claude", "model": "status-400"}
        models["claude-stall"] = {"upstream": "claude", "model": "stall"}
        models["claude-no-done"] = {"upstream": "claude", "model": "no-done"}
        prefix = "claude-" if anthropic_routing else ""
        doc = {
            "upstreams": {
                "a": {"base_url": f"{url}/v1", "api_key": "key-a"},
                "b": {"base_url": f"{url}/v1", "api_key": "key-b"},
                "claude": {
                    "base_url": f"{url}/v1",
                    "api_key": "claude-secret",
                    "kind": "anthropic",
                },
            },
            "models": models,
            "routing": {
                "strong": env.pop("STRONG", f"{prefix}strong"),
                "weak": f"{prefix}weak",
                "fallback": f"{prefix}weak",
                "threshold": 0.5,
            },
        }
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(doc))
        app = create_app(load_settings(env, str(path)), classifier=ScriptedClassifier())
        with serve(app) as base:
            yield base

    return run


def said(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize(
    ("model", "text", "chosen", "reason"),
    [
        ("router", HARD, "strong", "strong"),
        ("router", EASY, "weak", "weak"),
        ("weak", HARD, "weak", "direct"),
    ],
)
def test_responses_create_and_stream(
    sdk: SDK, gateway: Gateway, upstream: Upstream, model: str, text: str, chosen: str, reason: str
) -> None:
    fake, _ = upstream
    with gateway() as url:
        raw = sdk.openai(url).responses.with_raw_response.create(model=model, input=text)
        answer = raw.parse()
        with sdk.openai(url).responses.stream(
            model=model, input=[{"role": "user", "content": text}]
        ) as s:
            deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
            final = s.get_final_response()
    assert raw.headers["x-routellm-model"] == chosen
    assert raw.headers["x-routellm-reason"] == reason
    assert raw.headers["x-routellm-request-id"]
    assert answer.output_text == f"Hello from ok:{chosen}!"
    assert "".join(deltas) == f"Hello from ok:{chosen}!"
    assert final.status == "completed"
    assert final.usage is not None
    seen = fake.history[-1]
    assert seen.path == "/v1/responses"
    assert seen.body["model"] == f"ok:{chosen}"
    assert seen.headers["authorization"] == f"Bearer key-{'a' if chosen == 'strong' else 'b'}"


def test_responses_stream_keeps_event_names_and_has_no_done(gateway: Gateway) -> None:
    body = {"model": "router", "input": HARD, "stream": True}
    with gateway() as url:
        response = httpx.post(f"{url}/v1/responses", json=body)
    names = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert names[0] == "response.created"
    assert names[-1] == "response.completed"
    assert "response.output_text.delta" in names
    assert "[DONE]" not in response.text


def test_previous_response_id_reaches_the_upstream_that_made_it(
    sdk: SDK, gateway: Gateway, upstream: Upstream
) -> None:
    fake, _ = upstream
    with gateway() as url:
        first = sdk.openai(url).responses.create(
            model="router", input=HARD
        )  # strong, on upstream a
        raw = sdk.openai(url).responses.with_raw_response.create(
            model="router", input=EASY, previous_response_id=first.id
        )
        with sdk.openai(url).responses.stream(
            model="router", input=EASY, previous_response_id=raw.parse().id
        ) as stream:
            streamed = stream.get_final_response()
        elsewhere = httpx.post(
            f"{url}/v1/responses",
            json={"model": "weak", "input": EASY, "previous_response_id": streamed.id},
        )
    assert raw.headers["x-routellm-model"] == "strong"  # the easy turn stayed where it must
    assert raw.headers["x-routellm-reason"] == "pinned"
    assert fake.history[-1].headers["authorization"] == "Bearer key-a"
    assert streamed.output_text == "Hello from ok:strong!"
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"]["param"] == "previous_response_id"


@pytest.mark.parametrize(
    ("model", "text", "chosen", "reason"),
    [
        ("router", HARD, "claude-strong", "strong"),
        ("router", EASY, "claude-weak", "weak"),
        ("claude-strong", EASY, "claude-strong", "direct"),
    ],
)
def test_messages_create_and_stream(
    sdk: SDK, gateway: Gateway, upstream: Upstream, model: str, text: str, chosen: str, reason: str
) -> None:
    fake, _ = upstream
    with gateway(anthropic_routing=True, ROUTELLM_API_KEYS="client-key") as url:
        raw = sdk.claude(url).messages.with_raw_response.create(
            model=model, max_tokens=32, messages=said(text)
        )
        message = raw.parse()
        bearer = sdk.claude(url, api_key=None, auth_token="client-key")
        with bearer.messages.stream(model=model, max_tokens=32, messages=said(text)) as stream:
            streamed = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert raw.headers["x-routellm-model"] == chosen
    assert raw.headers["x-routellm-reason"] == reason
    assert message.content[0].type == "text"
    assert message.content[0].text == f"Hello from ok:{chosen}!"
    assert streamed == f"Hello from ok:{chosen}!"
    assert final.stop_reason == "end_turn"
    seen = fake.history[-1]
    assert seen.path == "/v1/messages"
    assert seen.body["model"] == f"ok:{chosen}"
    assert seen.headers["x-api-key"] == "claude-secret"
    assert seen.headers["anthropic-version"] == sdk.claude(url).default_headers["anthropic-version"]
    assert "authorization" not in seen.headers  # the client's key never goes upstream


def test_messages_errors_come_in_anthropics_shape(
    sdk: SDK, gateway: Gateway, upstream: Upstream
) -> None:
    fake, _ = upstream
    with gateway(anthropic_routing=True, ROUTELLM_API_KEYS="client-key") as url:
        with pytest.raises(anthropic.AuthenticationError) as unauthorized:
            sdk.claude(url, api_key="wrong").messages.create(
                model="router", max_tokens=8, messages=said(HARD)
            )
        with pytest.raises(anthropic.NotFoundError):
            sdk.claude(url).messages.create(model="nope", max_tokens=8, messages=said(HARD))
        with pytest.raises(anthropic.BadRequestError) as upstream_400:
            sdk.claude(url).messages.create(model="claude-400", max_tokens=8, messages=said(HARD))
        bare = httpx.post(
            f"{url}/v1/messages",
            json={"model": "claude-weak", "max_tokens": 8, "messages": said(HARD)},
            headers={"x-api-key": "client-key"},
        )
        sent_version = fake.history[-1].headers["anthropic-version"]
        wrong_api = httpx.post(
            f"{url}/v1/messages",
            json={"model": "strong", "max_tokens": 8, "messages": said(HARD)},
            headers={"x-api-key": "client-key"},
        )
        openai_router = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "router", "messages": said(HARD)},
            headers={"authorization": "Bearer client-key"},
        )
    assert bare.status_code == 200
    assert sent_version == "2023-06-01"  # the default, when the client names none
    assert unauthorized.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert upstream_400.value.body == {  # the upstream's own error, as it wrote it
        "type": "error",
        "error": {"type": "fake_error", "message": "fake upstream says 400"},
    }
    assert wrong_api.status_code == 400
    assert wrong_api.json()["type"] == "error"
    assert wrong_api.json()["error"]["type"] == "invalid_request_error"
    assert openai_router.status_code == 400  # this router chooses among Anthropic models
    assert openai_router.json()["error"]["param"] == "model"


@pytest.mark.parametrize("api", ["responses", "messages"])
def test_fallback_and_breaker_on_the_new_apis(gateway: Gateway, api: str) -> None:
    strong = "claude-503" if api == "messages" else "status-503"
    env = {"STRONG": strong, "ROUTELLM_BREAKER_FAILURES": "1", "ROUTELLM_BREAKER_COOLDOWN": "30"}
    with gateway(anthropic_routing=api == "messages", **env) as url:
        if api == "messages":

            def call(model: str) -> httpx.Response:
                body = {"model": model, "max_tokens": 8, "messages": said(HARD)}
                return httpx.post(f"{url}/v1/messages", json=body)
        else:

            def call(model: str) -> httpx.Response:
                return httpx.post(f"{url}/v1/responses", json={"model": model, "input": HARD})

        routed = call("router")
        skipped = call(strong)
    assert routed.status_code == 200
    assert routed.headers["x-routellm-reason"] == "upstream_fallback"
    assert routed.headers["x-routellm-model"].endswith("weak")
    assert "Hello from ok:" in routed.text
    assert skipped.status_code == 502
    if api == "messages":
        assert skipped.json()["type"] == "error"
        assert skipped.json()["error"]["type"] == "api_error"
        assert "skipped for now" in skipped.json()["error"]["message"]
    else:
        assert skipped.json()["error"]["code"] == "upstream_unavailable"


@pytest.mark.parametrize(
    ("path", "model", "body"),
    [
        ("/v1/responses", "stall", {"input": HARD}),
        ("/v1/messages", "claude-stall", {"max_tokens": 8, "messages": said(HARD)}),
    ],
)
def test_client_disconnect_mid_stream_closes_the_upstream(
    gateway: Gateway, upstream: Upstream, path: str, model: str, body: dict[str, Any]
) -> None:
    fake, _ = upstream
    before = fake.cancelled
    with (
        gateway() as url,
        httpx.stream(
            "POST", f"{url}{path}", json={**body, "model": model, "stream": True}, timeout=10
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["x-routellm-model"] == model
        next(response.iter_bytes())
    assert wait_for(lambda: fake.cancelled == before + 1)


@pytest.mark.parametrize(
    ("path", "model", "body", "error"),
    [
        (
            "/v1/responses",
            "no-done",
            {"input": HARD},
            {"type": "error", "code": "upstream_error", "param": None},
        ),
        (
            "/v1/messages",
            "claude-no-done",
            {"max_tokens": 8, "messages": said(HARD)},
            {"type": "error", "error": {"type": "api_error"}},
        ),
    ],
)
def test_a_stream_that_ends_early_gets_the_apis_error_event(
    gateway: Gateway, path: str, model: str, body: dict[str, Any], error: dict[str, Any]
) -> None:
    with gateway() as url:
        response = httpx.post(
            f"{url}{path}", json={**body, "model": model, "stream": True}, timeout=10
        )
    name, data = response.text.strip().split("\n\n")[-1].split("\n")
    assert name == "event: error"
    sent = json.loads(data.removeprefix("data: "))
    message = sent.pop("message", None) or sent["error"].pop("message")
    assert "closed the stream before it finished" in message
    assert sent == error


def test_passthrough_embeddings_and_completions(
    sdk: SDK, gateway: Gateway, upstream: Upstream
) -> None:
    fake, _ = upstream
    with gateway() as url:
        vectors = sdk.openai(url).embeddings.create(model="embed", input="hello")
        text = sdk.openai(url).completions.create(model="embed", prompt="Say hi")
        chunks = list(
            sdk.openai(url).completions.create(model="embed", prompt="Say hi", stream=True)
        )
        routed = httpx.post(f"{url}/v1/embeddings", json={"model": "router", "input": "hello"})
    assert vectors.data[0].embedding == [0.25, 0.5, 0.75]
    paths = [seen.path for seen in fake.history[-3:]]
    assert paths == ["/v1/embeddings", "/v1/completions", "/v1/completions"]
    assert text.choices[0].text == "Hello from embed!"
    assert "".join(c.choices[0].text for c in chunks) == "Hello from embed!"
    assert routed.status_code == 400
    assert routed.json()["error"]["code"] == "invalid_model"


@pytest.mark.parametrize(
    "data",
    [
        '{"type": "response.output_text.delta\\nevent: response.completed"}',
        '{"type": "message_stop\\r\\n\\r\\ndata: {}"}',
        '{"type": 7}',
        '{"no": "type"}',
    ],
)
def test_an_event_name_from_upstream_can_never_forge_a_frame(data: str) -> None:
    from gateway.apis import AnthropicMessages, Responses
    from gateway.apis.base import StreamFailed

    for provider in (Responses(), AnthropicMessages()):
        body = b'{"model": "m", "input": "x", "messages": [{"role": "user", "content": "x"}]}'
        call = provider.parse(body, {}, max_messages=5)
        with pytest.raises(StreamFailed) as failed:
            provider.reader(call).frames(data)
        frame = failed.value.frame
        assert frame.startswith(b"event: error\ndata: ")
        assert frame.count(b"\n") == 3  # one event line, one data line, the blank line
