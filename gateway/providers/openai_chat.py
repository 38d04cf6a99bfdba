"""OpenAI Chat Completions (`POST /v1/chat/completions`), the gateway's first API.

Streams are `data: <json>` events ended by `data: [DONE]`. Strict clients (Chuanhu) need every
event re-framed as exactly `data: <one-line json>\\n\\n` and a few chunks repaired
(`gateway.sse.ChunkRepair`); the answer is complete once a choice carried a `finish_reason`.

To count a stream's tokens the gateway asks the upstream for usage
(`stream_options.include_usage`) when the client did not, and then removes what that adds (the
usage-only chunk and the `"usage": null` key on every other chunk), so the client gets exactly
the stream it asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.errors import UpstreamError
from gateway.pricing import Usage
from gateway.providers.base import Call, Provider, StreamFailed, StreamReader, UpstreamRequest
from gateway.routing import text_to_classify
from gateway.schema import parse_chat_request
from gateway.settings import Upstream
from gateway.sse import DONE, DONE_FRAME, ChunkRepair, decode_event, frame

_encode = msgspec.json.Encoder().encode


class ChatCompletions(Provider):
    name = "chat"
    path = "/chat/completions"

    def parse(self, raw: bytes, headers: Mapping[str, str], *, max_messages: int) -> Call:
        chat = parse_chat_request(raw, max_messages=max_messages)
        text = text_to_classify(chat.messages)
        seed, has_history = conversation_marks(chat.messages)
        return Call(
            chat.model,
            chat.stream,
            chat.body,
            text,
            conversation_seed=seed,
            has_history=has_history,
        )

    def request(self, upstream: Upstream, upstream_model: str, call: Call) -> UpstreamRequest:
        built = super().request(upstream, upstream_model, call)
        if not call.stream or asks_usage(call.body):
            return built
        options = call.body.get("stream_options")
        added = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        body = {**call.body, "model": upstream_model, "stream_options": added}
        return UpstreamRequest(built.path, built.headers, _encode(body))

    def reader(self, call: Call) -> StreamReader:
        return ChatReader(self, strip_usage=call.stream and not asks_usage(call.body))


def asks_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def conversation_marks(messages: list[dict[str, Any]], system: Any = None) -> tuple[str, bool]:
    """The conversation seed (system/developer messages before the first user message, and that
    user message, as JSON; Anthropic's top-level `system` first) and whether an assistant turn
    came before this request."""
    opening: list[Any] = [["system", system]] if system is not None else []
    for message in messages:
        opening.append([message.get("role"), message.get("content")])
        if message.get("role") == "user":
            break
    opening = [item for item in opening if item[0] in ("system", "developer", "user")]
    has_history = any(message.get("role") == "assistant" for message in messages)
    return msgspec.json.encode(opening).decode(), has_history


class ChatReader(StreamReader):
    """Chat Completions and legacy Completions streams (`data:` chunks, then `[DONE]`)."""

    def __init__(self, provider: Provider, *, strip_usage: bool = False) -> None:
        self._provider = provider
        self._repair = ChunkRepair()
        self._done = False
        self._strip_usage = strip_usage

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
        if chunk.get("usage") is not None:
            self.usage = Usage.from_openai(chunk["usage"])
        if self._strip_usage:
            chunk.pop("usage", None)
            if chunk.get("choices") == []:
                return []  # the usage-only chunk the gateway asked for itself
        frames = self._repair.frames(chunk)
        self.complete = self._repair.finished
        return frames

    def closing_frames(self) -> list[bytes]:
        return [DONE_FRAME]  # the answer was complete; only the upstream's [DONE] was missing

    def _failed(self, message: str) -> StreamFailed:
        return StreamFailed(self._provider.error_frame(UpstreamError(message)))
