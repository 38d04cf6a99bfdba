"""OpenAI Chat Completions (`POST /v1/chat/completions`), the gateway's first API.

Streams are `data: <json>` events ended by `data: [DONE]`. Strict clients (Chuanhu) need every
event re-framed as exactly `data: <one-line json>\\n\\n` and a few chunks repaired
(`gateway.sse.ChunkRepair`); the answer is complete once a choice carried a `finish_reason`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.errors import UpstreamError
from gateway.providers.base import Call, Provider, StreamFailed, StreamReader
from gateway.routing import text_to_classify
from gateway.schema import parse_chat_request
from gateway.sse import DONE, DONE_FRAME, ChunkRepair, decode_event, frame


class ChatCompletions(Provider):
    name = "chat"
    path = "/chat/completions"

    def parse(self, raw: bytes, *, max_messages: int) -> Call:
        chat = parse_chat_request(raw, max_messages=max_messages)
        text = text_to_classify(chat.messages)
        seed, has_history = conversation_marks(chat.messages)
        return Call(chat.model, chat.stream, chat.body, text, seed, has_history)

    def reader(self) -> StreamReader:
        return ChatReader(self)


def conversation_marks(messages: list[dict[str, Any]]) -> tuple[str, bool]:
    """The conversation seed (system/developer messages before the first user message, and that
    user message, as JSON) and whether an assistant turn came before this request."""
    opening: list[Any] = []
    for message in messages:
        opening.append([message.get("role"), message.get("content")])
        if message.get("role") == "user":
            break
    opening = [item for item in opening if item[0] in ("system", "developer", "user")]
    has_history = any(message.get("role") == "assistant" for message in messages)
    return msgspec.json.encode(opening).decode(), has_history


class ChatReader(StreamReader):
    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self._repair = ChunkRepair()
        self._done = False

    @property
    def ended(self) -> bool:
        return self._done

    def frames(self, data: str) -> list[bytes]:
        if data == DONE:
            self._done = self.complete = True
            return [DONE_FRAME]
        try:
            chunk = decode_event(data)
        except ValueError:
            raise self._failed(f"upstream sent an event that is not JSON: {data[:200]!r}") from None
        if not isinstance(chunk, dict):
            raise self._failed(f"upstream sent an event that is not an object: {data[:200]!r}")
        if "error" in chunk:
            # The upstream's own error event reaches the client as it is; the stream ends.
            self._done = True
            raise StreamFailed(frame(chunk))
        frames = self._repair.frames(chunk)
        self.complete = self._repair.finished
        return frames

    def closing_frames(self) -> list[bytes]:
        return [DONE_FRAME]  # the answer was complete; only the upstream's [DONE] was missing

    def _failed(self, message: str) -> StreamFailed:
        return StreamFailed(self._provider.error_frame(UpstreamError(message)))
