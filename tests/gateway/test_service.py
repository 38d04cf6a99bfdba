"""The domain layer without HTTP: an upstream behind `httpx.MockTransport`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from gateway.schema import parse_chat_request
from gateway.service import Gateway
from gateway.settings import load_settings
from tests.classifier.conftest import FakeClassifier


class TrackedStream(httpx.AsyncByteStream):
    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        self.closed = True


async def test_a_stream_closed_before_iteration_still_closes_upstream_and_settles() -> None:
    stream = TrackedStream()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)

    settings = load_settings(
        {"ROUTELLM_UPSTREAM_BASE_URL": "http://up.test/v1", "ROUTELLM_MODELS": "m"}
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        gateway = Gateway(settings, FakeClassifier(), client)
        chat = parse_chat_request(
            b'{"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]}',
            max_messages=10,
        )
        answer = await gateway.complete(chat)
        assert answer.frames is not None
        assert gateway.metrics.inflight == 1
        await answer.frames.aclose()  # the client left before the first frame was sent
        await answer.frames.aclose()  # idempotent
    assert stream.closed
    assert gateway.metrics.inflight == 0
    assert gateway.metrics.requests[("m", "direct", 200)] == 1


async def test_a_relayed_stream_settles_once_when_it_ends() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=TrackedStream()
        )

    settings = load_settings(
        {"ROUTELLM_UPSTREAM_BASE_URL": "http://up.test/v1", "ROUTELLM_MODELS": "m"}
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        gateway = Gateway(settings, FakeClassifier(), client)
        chat = parse_chat_request(
            b'{"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]}',
            max_messages=10,
        )
        answer = await gateway.complete(chat)
        assert answer.frames is not None
        frames = [frame async for frame in answer.frames]
        await answer.frames.aclose()
    assert frames[-1] == b"data: [DONE]\n\n"
    assert gateway.metrics.inflight == 0
    assert sum(gateway.metrics.requests.values()) == 1
