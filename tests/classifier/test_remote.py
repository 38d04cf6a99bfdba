"""RemoteClassifier against real loopback servers speaking each wire format, plus MockTransport."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from classifier.base import ClassifierError, Scores
from classifier.remote import RemoteClassifier, redact_url
from classifier.service import create_app
from classifier.settings import ClassifierSettings
from tests.classifier.conftest import FakeClassifier, fake_scores
from tests.classifier.fake_servers import FakeRemote
from tests.servers import serve as loopback

TEXTS = ["What is 2+2?", "Prove Fermat's last theorem in full detail please", "你好"]
TOKEN = "hf_secret_token_123"
CERTAIN = [{"label": f"LABEL_{i}", "score": float(i == 0)} for i in range(3)]


@pytest.fixture(scope="module")
def remote() -> Iterator[tuple[str, FakeRemote]]:
    app = FakeRemote()
    with loopback(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def seed_url() -> Iterator[str]:
    """This project's own service (the seed format), on loopback."""
    app = create_app(ClassifierSettings(model="fake-model"), classifier=FakeClassifier())
    with loopback(app) as url:
        yield url


def expected(texts: list[str]) -> list[Scores]:
    return [fake_scores(t) for t in texts]


@pytest.mark.parametrize("route", ["/predict", "/v1/classifications"])
async def test_seed_service(seed_url: str, route: str) -> None:
    client = RemoteClassifier(seed_url + route)
    try:
        assert await client.classify(TEXTS[:1]) == expected(TEXTS[:1])
        assert await client.classify(TEXTS) == expected(TEXTS)
        assert await client.classify([]) == []
    finally:
        await client.aclose()


async def test_seed_service_classify_route(seed_url: str) -> None:
    client = RemoteClassifier(seed_url + "/classify")
    try:
        assert await client.classify(TEXTS) == expected(TEXTS)
    finally:
        await client.aclose()


async def test_hugging_face_nested_with_bearer_token(remote: tuple[str, FakeRemote]) -> None:
    url, app = remote
    client = RemoteClassifier(url + "/hf/models/routellm", token=TOKEN)
    try:
        app.requests.clear()
        assert await client.classify(TEXTS) == expected(TEXTS)
        # one request per text, each a plain string: never a list TEI would read as a pair
        assert sorted(body["inputs"] for _, _, body in app.requests) == sorted(TEXTS)
        assert {auth for _, auth, _ in app.requests} == {f"Bearer {TOKEN}"}
    finally:
        await client.aclose()


async def test_tei_sorted_by_score_is_read_by_label(remote: tuple[str, FakeRemote]) -> None:
    url, app = remote
    client = RemoteClassifier(url + "/tei/predict")
    try:
        app.requests.clear()
        got = await client.classify(TEXTS)
        assert got == expected(TEXTS)
        assert all(s.labels == ("LABEL_0", "LABEL_1", "LABEL_2") for s in got)
        assert all(auth is None for _, auth, _ in app.requests)
    finally:
        await client.aclose()


async def test_vllm_classify_sends_one_batch(remote: tuple[str, FakeRemote]) -> None:
    url, app = remote
    client = RemoteClassifier(url + "/vllm/classify", token=TOKEN)
    try:
        app.requests.clear()
        assert await client.classify(TEXTS) == expected(TEXTS)
        assert app.requests == [("/vllm/classify", f"Bearer {TOKEN}", {"input": TEXTS})]
    finally:
        await client.aclose()


async def test_500_is_an_error_without_the_token(remote: tuple[str, FakeRemote]) -> None:
    url, _ = remote
    client = RemoteClassifier(url.replace("http://", "http://user:pw@") + "/fail", token=TOKEN)
    try:
        with pytest.raises(ClassifierError) as info:
            await client.classify(["x"])
        message = str(info.value)
        assert "answered 500" in message
        assert "boom" in message
        assert TOKEN not in message
        assert "pw" not in message
        health = await client.health()
        assert health["url"] == url + "/fail"
        assert health["last_error"] == message
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("path", "seconds", "pattern"),
    [
        ("/slow", 0.2, r"timed out after 0\.2 s"),
        ("/garbage", 2.0, "not JSON: <html>not json</html>"),
        ("/redirect", 2.0, "answered 307"),  # redirects are not followed
    ],
)
async def test_unusable_answers_are_errors(
    remote: tuple[str, FakeRemote], path: str, seconds: float, pattern: str
) -> None:
    url, _ = remote
    client = RemoteClassifier(url + path, timeout=seconds)
    try:
        with pytest.raises(ClassifierError, match=pattern):
            await client.classify(["x"])
    finally:
        await client.aclose()


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = RemoteClassifier(f"http://127.0.0.1:{port}/predict")
    try:
        with pytest.raises(ClassifierError, match="unreachable: ConnectError"):
            await client.classify(["x"])
        assert (await client.health())["status"] == "error"
    finally:
        await client.aclose()


# --- MockTransport: shapes and edge cases without sockets ---


async def test_recovers_and_clears_last_error() -> None:
    answers = [httpx.Response(503, json={"error": "Model is loading"}),
               httpx.Response(200, json=CERTAIN)]  # fmt: skip
    client = RemoteClassifier(
        "http://classifier/predict", transport=httpx.MockTransport(lambda _: answers.pop(0))
    )
    try:
        with pytest.raises(ClassifierError, match=r"503: .*Model is loading"):
            await client.classify(["x"])
        assert (await client.health())["last_error"] is not None
        [scores] = await client.classify(["x"])
        assert scores.top == ("LABEL_0", 1.0)
        assert await client.health() == {
            "status": "ok",
            "url": "http://classifier/predict",
            "last_error": None,
            "errors": 1,
            "invalid_answers": 0,
        }
    finally:
        await client.aclose()


async def test_wrong_number_of_results() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        data = [{"index": 0, "probs": [1.0, 0, 0]}]
        return httpx.Response(200, json={"object": "list", "data": data})

    client = RemoteClassifier("http://c/classify", transport=httpx.MockTransport(handler))
    try:
        with pytest.raises(ClassifierError, match="returned 1 results for 2 texts"):
            await client.classify(["a", "b"])
    finally:
        await client.aclose()


async def test_unreadable_json_shape() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"labels": ["LABEL_0"]})

    client = RemoteClassifier("http://c/predict", transport=httpx.MockTransport(handler))
    try:
        with pytest.raises(ClassifierError, match="unreadable classifier response"):
            await client.classify(["a"])
    finally:
        await client.aclose()


def test_redact_url() -> None:
    assert redact_url("https://u:p@host:8443/predict?key=s") == "https://host:8443/predict"
    assert redact_url("http://[::1]:8800/classify") == "http://[::1]:8800/classify"


async def test_url_credentials_become_basic_auth_and_leave_the_url() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=CERTAIN)

    client = RemoteClassifier("http://me:s3cret@c/predict", transport=httpx.MockTransport(handler))
    try:
        await client.classify(["x"])
        assert seen[0].headers["authorization"] == httpx.BasicAuth("me", "s3cret")._auth_header
        assert str(seen[0].url) == "http://c/predict"
        assert client.name == "http://c/predict"
    finally:
        await client.aclose()
