"""A fake upstream, standing for a remote LLM, on every API path the gateway forwards to
(`tests.gateway.fake_apis`: chat completions, responses, Anthropic messages, embeddings,
completions).

Its behaviour is chosen by the upstream model id the gateway sends (the `model:` of a config
entry, up to a first ':'), so one server plays every part; answers name the whole id:

    ok[:name]     a normal answer (streamed or not); the final content arrives in the chunk
                  that carries finish_reason "stop", as many real servers do
    crlf          the same stream framed with CRLF, comments, `event:`/`id:` lines
    split         the same stream cut into 1-3 byte writes (events and CRLFs split across reads)
    status-<N>    answers HTTP N with an error body in the API's shape (429 adds Retry-After: 7)
    html-502      answers 502 with an HTML page
    redirect      answers 302 to another host
    hang          accepts the request, never sends a byte
    slow-first    sends its first byte after 1.5 s, then answers normally
    cut           sends two chunks, then closes the connection mid-stream
    stall         sends two chunks, then never another byte
    no-done       a stream without its last event ([DONE], or the API's terminal event)
    endless-event two chunks, then an event that never ends: 64 KiB reads without a line end,
                  up to 8 MiB, then silence
    endless-first the same endless event before any other
    drip          two chunks, then a comment line every 0.05 s, never another event
    huge-body     a non-streamed answer of about 2 MiB
    slow-stream   the normal stream, one chunk every SLOW_STREAM_GAP seconds (a long answer
                  in flight, for the shutdown drain)
    judge         a shadow judge (`gateway.quality.shadow`'s prompt): the verdict is scripted by a
                  `verdict=strong|tie|weak` written in the judged question (tie without one);
                  it finds which of answers A and B is the strong model's (the one whose text
                  holds "strong") and answers [[A]], [[B]] or [[C]] accordingly
    slow-judge    the same judge, answering after 1.5 s

It records every request (`history`), counts requests opened and finished (`open_streams`,
`closed_streams`), and `cancelled`: requests whose connection the gateway closed before the
answer was complete (what a client disconnect must cause).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from tests.gateway.fake_apis import APIS, anthropic_error
from tests.servers import read_request

SLOW_STREAM_GAP = 0.5


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    query: str = ""


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
        query = scope.get("query_string", b"").decode()
        self.history.append(Seen(scope["path"], headers, body, query))
        model = str(body.get("model", "ok"))
        behaviour = model.split(":", maxsplit=1)[0]
        self.open_streams += 1
        answer = asyncio.ensure_future(self._answer(scope["path"], behaviour, model, body, send))
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

    async def _answer(
        self, path: str, behaviour: str, model: str, body: dict[str, Any], send: Any
    ) -> None:
        if behaviour.startswith("status-"):
            status = int(behaviour.split("-")[1])
            extra = [(b"retry-after", b"7")] if status == 429 else []
            error = {
                "message": f"fake upstream says {status}",
                "type": "fake_error",
                "param": None,
                "code": "fake",
            }
            payload = anthropic_error(status) if path == "/v1/messages" else {"error": error}
            await _respond(send, status, json.dumps(payload).encode(), extra)
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
        if behaviour in ("slow-first", "slow-judge"):
            await asyncio.sleep(1.5)
        answer, stream_frames = APIS.get(path, APIS["/v1/chat/completions"])
        if behaviour in ("judge", "slow-judge"):
            judged = answer(model)
            judged["choices"][0]["message"]["content"] = _judge(body)
            await _respond(send, 200, json.dumps(judged).encode(), [])
            return
        if behaviour == "huge-body" and not body.get("stream"):
            huge = answer(model)
            huge["choices"][0]["message"]["content"] = "x" * 2 * 1024 * 1024
            await _respond(send, 200, json.dumps(huge).encode(), [])
            return
        if not body.get("stream") or stream_frames is None:
            await _respond(
                send, 200, json.dumps(answer(model)).encode(), [(b"x-request-id", b"req-123")]
            )
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"x-request-id", b"req-123")],
            }
        )
        frames = stream_frames(model, body)
        if behaviour == "no-done":
            frames = frames[:-1]
        if behaviour == "crlf":
            prefix = b": ping\r\nevent: message\r\nid: 1\r\n"
            await _body(send, b"".join(prefix + f.replace(b"\n", b"\r\n") for f in frames))
        elif behaviour == "split":
            wire = b"".join(f.replace(b"\n", b"\r\n") for f in frames)
            rng = random.Random(0)
            i = 0
            while i < len(wire):
                n = rng.randint(1, 3)
                await _body(send, wire[i : i + n])
                await asyncio.sleep(0)
                i += n
        elif behaviour == "endless-first":
            await _endless(send)
        else:
            for i, out in enumerate(frames):
                if behaviour == "endless-event" and i == 2:
                    await _endless(send)
                if behaviour == "drip" and i == 2:
                    while True:
                        await _body(send, b": still here\n")
                        await asyncio.sleep(0.05)
                if behaviour == "slow-stream" and i > 0:
                    await asyncio.sleep(SLOW_STREAM_GAP)
                if behaviour in ("cut", "stall") and i == 2:
                    if behaviour == "stall":
                        await asyncio.sleep(3600)
                    raise ConnectionResetError("fake upstream cut the stream")
                await _body(send, out)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


JUDGED = re.compile(r"verdict=(strong|tie|weak)")
ANSWER_A = re.compile(r"\[The Start of Assistant A's Answer\]\n(.*?)\n\[The End", re.S)


def _judge(body: dict[str, Any]) -> str:
    """A scripted judge: the verdict written in the question, told in the order it was shown."""
    prompt = body["messages"][-1]["content"]
    question = prompt.split("[The Start of Assistant A's Answer]")[0]
    found = JUDGED.search(question)
    verdict = found.group(1) if found else "tie"
    first = ANSWER_A.search(prompt)
    strong_first = first is not None and "strong" in first.group(1)
    strong_mark, weak_mark = ("A", "B") if strong_first else ("B", "A")
    mark = {"strong": strong_mark, "weak": weak_mark, "tie": "C"}[verdict]
    return f"Both answers greet the user.\n[[{mark}]]"


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


async def _endless(send: Any) -> None:
    """An event that never ends (8 MiB without a line end), then silence."""
    await _body(send, b"data: ")
    for _ in range(128):
        await _body(send, b"x" * 65536)
    await asyncio.sleep(3600)


async def _disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
