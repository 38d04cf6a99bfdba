"""The classifier HTTP service: every route, every bad input, auth, health, a real server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from classifier.base import ClassifierError
from classifier.local import LocalClassifier
from classifier.remote import RemoteClassifier
from classifier.service import create_app
from classifier.service_settings import ServiceSettings
from classifier.settings import ClassifierSettings
from tests.classifier.conftest import FakeClassifier, fake_scores
from tests.servers import serve as loopback

Client = AsyncTestClient[Any]


@pytest.fixture
async def client(fake: FakeClassifier) -> AsyncIterator[Client]:
    settings = ClassifierSettings(model="fake-model")
    service = ServiceSettings(max_inputs=4, max_body_bytes=2048)
    async with AsyncTestClient(create_app(settings, service, classifier=fake)) as c:
        yield c


def ranked(text: str) -> list[dict[str, object]]:
    return [{"label": lb, "score": p} for lb, p in fake_scores(text).ranked()]


@pytest.mark.parametrize("route", ["/predict", "/v1/classifications"])
async def test_predict_single_and_batch(client: Client, route: str) -> None:
    single = await client.post(route, json={"inputs": "hello"})
    assert single.status_code == 200
    assert single.json() == ranked("hello")
    batch = await client.post(route, json={"inputs": ["hello", "a longer text"]})
    assert batch.status_code == 200
    assert batch.json() == [ranked("hello"), ranked("a longer text")]


async def test_classify_vllm_shape(client: Client) -> None:
    response = await client.post("/classify", json={"model": "x", "input": ["a", "bb"]})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert body["model"] == "fake-model"
    assert {"id", "created", "usage"} <= body.keys()
    assert [d["probs"] for d in body["data"]] == [
        list(fake_scores("a").probs),
        list(fake_scores("bb").probs),
    ]
    assert [d["index"] for d in body["data"]] == [0, 1]
    single = await client.post("/classify", json={"input": "a"})
    assert single.json()["data"][0]["num_classes"] == 3


async def test_health_when_ready(client: Client) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": "fake-model"}


def assert_error(response: httpx.Response, status: int, needle: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert needle in error["message"]
    return dict(error)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "body is empty"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 2000, "not valid JSON"),  # nested too deep for the decoder
        (b'"just a string"', "must be a JSON object"),
        (b'{"text": "hi"}', "missing field 'inputs'"),
        (b'{"inputs": 42}', "not a number"),
        (b'{"inputs": [1, 2]}', "'inputs[0]' must be a string"),
        (b'{"inputs": [["a"], ["b"]]}', "not a list"),
        (b'{"inputs": []}', "empty list"),
        (b'{"inputs": ""}', "empty or only whitespace"),
        (b'{"inputs": "   "}', "empty or only whitespace"),
        (b'{"inputs": ["a", "b", "c", "d", "e"]}', "at most 4"),
        (b'{"inputs": "\\ud800"}', "lone surrogate"),
    ],
)
async def test_bad_inputs_are_400_and_the_service_keeps_serving(
    client: Client, content: bytes, needle: str
) -> None:
    response = await client.post("/predict", content=content)
    error = assert_error(response, 400, needle)
    assert error["type"] == "invalid_request_error"
    assert (await client.post("/predict", json={"inputs": "still fine"})).status_code == 200


async def test_bad_classify_input(client: Client) -> None:
    error = assert_error(await client.post("/classify", json={"inputs": "x"}), 400, "'input'")
    assert error["param"] == "input"


async def test_body_too_large_is_413(client: Client) -> None:
    response = await client.post("/predict", json={"inputs": "x" * 5000})
    error = assert_error(response, 413, "larger than 2048 bytes")
    assert error["code"] == "request_too_large"


async def test_wrong_method_is_405_and_unknown_route_404(client: Client) -> None:
    response = await client.get("/predict")
    assert_error(response, 405, "")
    assert "POST" in response.headers.get("allow", "")
    assert_error(await client.post("/nope", json={}), 404, "no route /nope")


async def test_classifier_failure_is_503(client: Client, fake: FakeClassifier) -> None:
    fake.enqueue_error(ClassifierError("the model fell over"))
    error = assert_error(await client.post("/predict", json={"inputs": "x"}), 503, "fell over")
    assert error["code"] == "classifier_error"
    assert (await client.post("/predict", json={"inputs": "x"})).status_code == 200


async def test_api_key(fake: FakeClassifier) -> None:
    settings = ClassifierSettings(model="fake-model")
    service = ServiceSettings(api_key="sk-right")
    async with AsyncTestClient(create_app(settings, service, classifier=fake)) as c:
        body = {"inputs": "x"}
        assert_error(await c.post("/predict", json=body), 401, "API key")
        wrong = {"Authorization": "Bearer sk-wrong"}
        error = assert_error(await c.post("/classify", json={"input": "x"}, headers=wrong), 401, "")
        assert error["code"] == "invalid_api_key"
        assert_error(
            await c.post("/predict", json=body, headers={"Authorization": "sk-right"}), 401, ""
        )
        ok = await c.post("/predict", json=body, headers={"Authorization": "Bearer sk-right"})
        assert ok.status_code == 200
        assert (await c.get("/health")).status_code == 200  # health stays open
    assert fake.closed


async def test_health_before_and_after_load(
    settings: ClassifierSettings,
    service_settings: ServiceSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model loads in the background: 503 with a reason until it is warmed up."""
    gate = threading.Event()
    real_load = LocalClassifier.load

    def gated_load(s: ClassifierSettings) -> LocalClassifier:
        gate.wait(30)
        return real_load(s)

    monkeypatch.setattr(LocalClassifier, "load", gated_load)
    async with AsyncTestClient(create_app(settings, service_settings)) as c:
        before = await c.get("/health")
        assert before.status_code == 503
        assert before.json()["status"] == "loading"
        assert "loading" in before.json()["reason"]
        assert_error(await c.post("/predict", json={"inputs": "x"}), 503, "is loading")
        gate.set()
        for _ in range(500):
            after = await c.get("/health")
            if after.status_code == 200:
                break
            await asyncio.sleep(0.02)
        assert after.json() == {"status": "ok", "model": settings.model}
        response = await c.post("/predict", json={"inputs": "hello"})
        assert response.json()[0]["label"] == "LABEL_2"


async def test_failed_load_reports_the_reason(tmp_path: Path) -> None:
    settings = ClassifierSettings(model=str(tmp_path / "missing"))
    async with AsyncTestClient(create_app(settings)) as c:
        for _ in range(200):
            health = await c.get("/health")
            if health.json()["status"] != "loading":
                break
            await asyncio.sleep(0.02)
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        assert "ROUTELLM_BERT_URL" in health.json()["reason"]
        error = assert_error(await c.post("/predict", json={"inputs": "x"}), 503, "does not exist")
        assert error["code"] == "classifier_unavailable"


async def test_real_uvicorn_server_with_the_real_model(
    settings: ClassifierSettings, service_settings: ServiceSettings
) -> None:
    """End to end: uvicorn on 127.0.0.1, a real tiny checkpoint, our RemoteClassifier and httpx."""
    with loopback(create_app(settings, service_settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            for _ in range(500):
                if (await http.get("/health")).status_code == 200:
                    break
                await asyncio.sleep(0.02)
            predicted = await http.post("/predict", json={"inputs": ["a", "b"]})
            assert [r[0]["label"] for r in predicted.json()] == ["LABEL_2", "LABEL_2"]
            assert (await http.post("/predict", content=b"nope")).status_code == 400
            assert (await http.post("/predict", json={"inputs": "x" * 5000})).status_code == 413
            assert (await http.delete("/classify")).status_code == 405
        remote = RemoteClassifier(url + "/predict")
        try:
            scores = await remote.classify(["one", "two", "three"])
            assert [s.top[0] for s in scores] == ["LABEL_2"] * 3
        finally:
            await remote.aclose()
