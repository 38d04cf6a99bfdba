"""The domain layer without HTTP: an upstream behind `httpx.MockTransport`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from gateway.apis import ChatCompletions
from gateway.flow import Gateway, Relay
from gateway.settings.load import load_settings
from tests.classifier.conftest import FakeClassifier


class TrackedStream(httpx.AsyncByteStream):
    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        self.closed = True


SETTINGS = load_settings(
    {"ROUTELLM_UPSTREAM_BASE_URL": "http://up.test/v1", "ROUTELLM_MODELS": "m"}
)
CHAT = ChatCompletions()
CALL = CHAT.parse(
    b'{"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]}',
    {},
    max_messages=10,
)


def answered(gateway: Gateway, model: str, reason: str, status: str) -> float | None:
    labels = {"model": model, "reason": reason, "status": status}
    return gateway.telemetry.registry.get_sample_value("routellm_requests_total", labels)


@asynccontextmanager
async def streamed_answer(stream: TrackedStream) -> AsyncIterator[tuple[Gateway, Relay]]:
    """A gateway whose upstream streams `stream`, and the answer it opened for `CHAT`."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        gateway = Gateway(SETTINGS, FakeClassifier(), client)
        answer = await gateway.complete(CHAT, CALL)
        assert answer.frames is not None
        yield gateway, answer.frames


async def test_a_stream_closed_before_iteration_still_closes_upstream_and_settles() -> None:
    stream = TrackedStream()
    async with streamed_answer(stream) as (gateway, frames):
        assert gateway.inflight == 1
        await frames.aclose()  # the client left before the first frame was sent
        await frames.aclose()  # idempotent
    assert stream.closed
    assert gateway.inflight == 0
    assert answered(gateway, "m", "direct", "200") == 1


async def test_a_relayed_stream_settles_once_when_it_ends() -> None:
    stream = TrackedStream()
    async with streamed_answer(stream) as (gateway, frames):
        received = [frame async for frame in frames]
        await frames.aclose()
    assert received[-1] == b"data: [DONE]\n\n"
    assert stream.closed
    assert gateway.inflight == 0
    assert answered(gateway, "m", "direct", "200") == 1
