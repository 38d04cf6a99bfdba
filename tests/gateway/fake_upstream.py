"""A fake OpenAI-compatible upstream, standing for a remote LLM.

Its behaviour is chosen by the upstream model id the gateway sends (the `model:` of a config
entry, up to a first ':'), so one server plays every part; answers name the whole id:

    ok[:name]     a normal answer (streamed or not); the final content arrives in the chunk
                  that carries finish_reason "stop", as many real servers do
    crlf          the same stream framed with CRLF, comments, `event:`/`id:` lines
    split         the same stream cut into 1-3 byte writes (events and CRLFs split across reads)
    status-<N>    answers HTTP N with an OpenAI error body (429 adds Retry-After: 7)
    html-502      answers 502 with an HTML page
    redirect      answers 302 to another host
    hang          accepts the request, never sends a byte
    slow-first    sends its first byte after 1.5 s, then answers normally
    cut           sends two chunks, then closes the connection mid-stream
    stall         sends two chunks, then never another byte
    no-done       a complete stream without the final [DONE]
    slow-stream   the normal stream, one chunk every SLOW_STREAM_GAP seconds (a long answer
                  in flight, for the shutdown drain)

It records every request (`history`), counts requests opened and finished (`open_streams`,
`closed_streams`), and `cancelled`: requests whose connection the gateway closed before the
answer was complete (what a client disconnect must cause).
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Any

from tests.servers import read_request

SLOW_STREAM_GAP = 0.5


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeUpstream:
    history: list[Seen] = field(default_factory=list)
    open_streams: int = 0
    closed_streams: int = 0
    cancelled: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # no lifespan to run: uvicorn's "auto" mode carries on without one
        headers, raw = await read_request(scope, receive)
        body = json.loads(raw) if raw else {}
        self.history.append(Seen(scope["path"], headers, body))
        model = str(body.get("model", "ok"))
        behaviour = model.split(":", maxsplit=1)[0]
        self.open_streams += 1
        answer = asyncio.ensure_future(self._answer(behaviour, model, body, send))
        watcher = asyncio.ensure_future(_disconnect(receive))
        try:
            await asyncio.wait({answer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not answer.done():
                # The gateway closed the connection: what its cancellation must cause.
                self.cancelled += 1
                answer.cancel()
            await asyncio.gather(answer, return_exceptions=True)
        finally:
            watcher.cancel()
            self.closed_streams += 1

    async def _answer(self, behaviour: str, model: str, body: dict[str, Any], send: Any) -> None:
        if behaviour.startswith("status-"):
            status = int(behaviour.split("-")[1])
            extra = [(b"retry-after", b"7")] if status == 429 else []
            error = {
                "message": f"fake upstream says {status}",
                "type": "fake_error",
                "param": None,
                "code": "fake",
            }
            await _respond(send, status, json.dumps({"error": error}).encode(), extra)
            return
        if behaviour == "redirect":
            await _respond(
                send, 302, b"", [(b"location", b"http://127.0.0.1:9/v1/chat/completions")]
            )
            return
        if behaviour == "html-502":
            await _respond(send, 502, b"<html>Bad gateway</html>", [], "text/html")
            return
        if behaviour == "hang":
            await asyncio.sleep(3600)
        if behaviour == "slow-first":
            await asyncio.sleep(1.5)
        if not body.get("stream"):
            await _respond(
                send, 200, json.dumps(completion(model)).encode(), [(b"x-request-id", b"req-123")]
            )
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"x-request-id", b"req-123")],
            }
        )
        chunks = stream_chunks(model)
        if behaviour == "crlf":
            wire = (
                b"".join(
                    b": ping\r\nevent: message\r\nid: 1\r\ndata: "
                    + json.dumps(c).encode()
                    + b"\r\n\r\n"
                    for c in chunks
                )
                + b"data: [DONE]\r\n\r\n"
            )
            await _body(send, wire)
        elif behaviour == "split":
            wire = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
            wire += b"data: [DONE]\r\n\r\n"
            rng = random.Random(0)
            i = 0
            while i < len(wire):
                n = rng.randint(1, 3)
                await _body(send, wire[i : i + n])
                await asyncio.sleep(0)
                i += n
        else:
            for i, chunk in enumerate(chunks):
                if behaviour == "slow-stream" and i > 0:
                    await asyncio.sleep(SLOW_STREAM_GAP)
                if behaviour in ("cut", "stall") and i == 2:
                    if behaviour == "stall":
                        await asyncio.sleep(3600)
                    raise ConnectionResetError("fake upstream cut the stream")
                await _body(send, b"data: " + json.dumps(chunk).encode() + b"\n\n")
            if behaviour != "no-done":
                await _body(send, b"data: [DONE]\n\n")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"Hello from {model}!"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


def stream_chunks(model: str) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model}
    deltas: list[tuple[dict[str, Any], str | None]] = [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Hello"}, None),
        ({"content": f" from {model}"}, None),
        ({"content": "!"}, "stop"),
    ]
    return [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}
        for delta, reason in deltas
    ]


async def _respond(
    send: Any,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    media: str = "application/json",
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", media.encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _body(send: Any, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
