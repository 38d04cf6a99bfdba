"""Hostile request bodies through the real app: whatever a client sends, the answer is a 2xx or
a 4xx in the OpenAI error shape, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.settings.load import load_settings
from tests.classifier.conftest import FakeClassifier

ENV = {
    "ROUTELLM_UPSTREAM_BASE_URL": "http://upstream.test/v1",
    "ROUTELLM_STRONG_MODEL": "strong",
    "ROUTELLM_WEAK_MODEL": "weak",
    "ROUTELLM_FALLBACK_MODEL": "weak",
    "ROUTELLM_MODELS": "direct",
}
COMPLETION = {
    "id": "c-1",
    "object": "chat.completion",
    "created": 0,
    "model": "weak",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
}


def upstream(request: httpx.Request) -> httpx.Response:
    """An upstream that reads the forwarded body (it must be valid JSON) and answers."""
    body = json.loads(request.content)
    if body.get("stream"):
        chunk = {**COMPLETION, "object": "chat.completion.chunk", "choices": []}
        sse = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        return httpx.Response(200, content=sse, headers={"content-type": "text/event-stream"})
    return httpx.Response(200, json=COMPLETION)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Any]]:
    app = create_app(
        load_settings(ENV), classifier=FakeClassifier(), transport=httpx.MockTransport(upstream)
    )
    with TestClient(app) as test_client:
        yield test_client


def assert_not_a_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"]


PATHS = ["/v1/chat/completions", "/v1/route"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.sampled_from(["user", "text", "assistant", "image_url", "router", "direct"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["role", "content", "type", "text", "name", "x"]) | st.text(max_size=5),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant"]) | json_values},
        optional={"content": json_values | st.text(max_size=20), "name": json_values},
    )
    | json_values,
    max_size=4,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["router", "router-bert-0.5", "direct", "router-bert-x"])
        | json_values,
        "messages": messages | json_values,
        "stream": st.booleans() | json_values,
        "temperature": json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, path=st.sampled_from(PATHS))
def test_any_json_body_is_answered_2xx_or_4xx(
    client: TestClient[Any], body: dict[str, Any], path: str
) -> None:
    assert_not_a_server_error(client.post(path, content=json.dumps(body).encode()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=200), path=st.sampled_from(PATHS))
def test_any_bytes_are_answered_2xx_or_4xx(client: TestClient[Any], raw: bytes, path: str) -> None:
    response = client.post(path, content=raw)
    assert 400 <= response.status_code < 500
    assert_not_a_server_error(response)


def user(content: bytes) -> bytes:
    """A body whose one user message's content is the raw JSON `content`."""
    return b'{"model": "router", "messages": [{"role": "user", "content": ' + content + b"}]}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "64 levels"),
        (b'{"model": "router", "x": ' + b"[" * 64 + b"]" * 64 + b"}", "64 levels"),
        (user(b'"\xff\xfe bad"'), "UTF-8"),
        (user(b'"\xed\xa0\x80"'), "UTF-8"),  # a surrogate encoded raw
        (user(b'"\\ud800 lone"'), "surrogate"),
        (user(b'"\\udc00"'), "surrogate"),
    ],
)
def test_malformed_bodies_get_a_400_naming_the_problem(
    client: TestClient[Any], path: str, raw: bytes, names: str
) -> None:
    response = client.post(path, content=raw)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert names in error["message"]


def test_nesting_within_the_limit_is_accepted(client: TestClient[Any]) -> None:
    body = {
        "model": "router",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": json.loads("[" * 63 + "]" * 63),  # 64 levels with the top object
    }
    response = client.post("/v1/route", content=json.dumps(body).encode())
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "path", ["/v1/responses", "/v1/messages", "/v1/completions", "/v1/embeddings"]
)
@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "64 levels"),
        (b'{"model": "direct", "input": "\xff\xfe"}', "UTF-8"),
        (b'{"model": "direct", "input": "\\ud800"}', "surrogate"),
    ],
)
def test_every_api_refuses_malformed_bodies_with_a_400(
    client: TestClient[Any], path: str, raw: bytes, names: str
) -> None:
    response = client.post(path, content=raw)
    assert response.status_code == 400
    assert names in response.json()["error"]["message"]
