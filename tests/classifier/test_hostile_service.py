"""Hostile bodies to the classifier service: whatever a client sends, the answer is a 2xx or a
4xx in the OpenAI error shape, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from classifier.service import create_app
from classifier.settings import ClassifierSettings
from tests.classifier.conftest import FakeClassifier

PATHS = ["/predict", "/v1/classifications", "/classify"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["inputs", "input", "model", "x"]), inner, max_size=3)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Any]]:
    app = create_app(ClassifierSettings(model="fake-model"), classifier=FakeClassifier())
    with TestClient(app) as test_client:
        yield test_client


def assert_client_error_or_success(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]["type"] == "invalid_request_error"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values, path=st.sampled_from(PATHS))
def test_any_json_is_answered_2xx_or_4xx(client: TestClient[Any], body: Any, path: str) -> None:
    raw = json.dumps(body).encode()
    assert_client_error_or_success(client.post(path, content=raw))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=200), path=st.sampled_from(PATHS))
def test_any_bytes_are_answered_2xx_or_4xx(client: TestClient[Any], raw: bytes, path: str) -> None:
    assert_client_error_or_success(client.post(path, content=raw))


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"inputs": "\xff\xfe"}',
        b'{"inputs": "\\ud800 lone"}',
        b'{"inputs": ["ok", "\\udc00"]}',
        b'{"input": [1]}',
    ],
)
def test_malformed_bodies_are_400(client: TestClient[Any], raw: bytes) -> None:
    response = client.post("/classify" if b'"input"' in raw else "/predict", content=raw)
    assert response.status_code == 400
    assert response.json()["error"]["message"]
