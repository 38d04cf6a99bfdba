"""OpenAI Chat Completions (`POST /v1/chat/completions`), the gateway's first API.

Streams are `data: <json>` events ended by `data: [DONE]`. Strict clients (Chuanhu) need every
event re-framed as exactly `data: <one-line json>\\n\\n` and a few chunks repaired
(`gateway.apis.sse.ChunkRepair`); the answer is complete once a choice carried a `finish_reason`.

To count a stream's tokens the gateway asks the upstream for usage
(`stream_options.include_usage`) when the client did not, and then removes what that adds (the
usage-only chunk and the `"usage": null` key on every other chunk), so the client gets exactly
the stream it asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.apis.base import Provider, StreamFailed, StreamReader, UpstreamRequest
from gateway.apis.schema import parse_chat_request
from gateway.apis.sse import DONE, DONE_FRAME, ChunkRepair, decode_event, frame
from gateway.errors import UpstreamError
from gateway.ledger.pricing import Usage
from gateway.routing.call import Call, Session
from gateway.routing.human_text import user_texts
from gateway.settings.upstreams import Upstream

_encode = msgspec.json.Encoder().encode


class ChatCompletions(Provider):
    name = "chat"
    path = "/chat/completions"

    def parse(self, raw: bytes, headers: Mapping[str, str], *, max_messages: int) -> Call:
        chat = parse_chat_request(raw, max_messages=max_messages)
        seed, has_history = conversation_marks(chat.messages)
        return Call(
            chat.model,
            chat.stream,
            chat.body,
            user_texts(chat.messages),
            headers=forwarded(headers),
            conversation_seed=seed,
            has_history=has_history,
            session=header_session(headers) or user_session(chat.body),
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


FORWARDED_PREFIXES = ("openai-beta", "x-codex-")
FORWARDED_HEADERS = frozenset(
    {"session-id", "session_id", "thread-id", "originator", "x-client-request-id"}
)
"""OpenAI-API client headers that go upstream as sent: betas, and the ids and metadata agents
send (Codex names its session and turn in them). The client's credentials, and its
`openai-organization` / `openai-project`, which name its own account, are never forwarded."""
SESSION_HEADERS = ("session-id", "session_id", "thread-id")
MARKUP = frozenset({"cache_control", "id", "citations"})
"""Keys of a content part that mark it up without being its content: clients move them between
turns (Claude Code puts `cache_control` on the newest message), so they never change a derived
conversation id."""


def forwarded(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in headers.items()
        if name.lower() in FORWARDED_HEADERS or name.lower().startswith(FORWARDED_PREFIXES)
    }


def user_session(body: Mapping[str, Any]) -> Session | None:
    """OpenAI clients' own ids: `prompt_cache_key` (Codex: its session), else the end user's
    `user` or `safety_identifier`."""
    key = body.get("prompt_cache_key")
    if isinstance(key, str) and key.strip():
        return Session(f"prompt_cache_key:{key.strip()}", durable=True)
    for name in ("user", "safety_identifier"):
        value = body.get(name)
        if isinstance(value, str) and value.strip():
            return Session(f"user:{value.strip()}", durable=False)
    return None


def header_session(headers: Mapping[str, str]) -> Session | None:
    """Codex's `session-id` / `thread-id` headers."""
    for name in SESSION_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            return Session(f"session:{value}", durable=True)
    return None


def without_markup(content: Any) -> Any:
    """A message's content as a derived conversation id sees it: parts without `MARKUP`."""
    if not isinstance(content, list):
        return content
    return [
        {k: v for k, v in part.items() if k not in MARKUP} if isinstance(part, dict) else part
        for part in content
    ]


def conversation_marks(messages: list[Any], system: Any = None) -> tuple[str, bool]:
    """The conversation seed (system/developer messages before the first user message, and that
    user message, without markup; Anthropic's top-level `system` first) and whether an assistant
    turn came before this request."""
    opening: list[Any] = [["system", without_markup(system)]] if system is not None else []
    has_history = False
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        has_history |= role == "assistant"
        if role in ("system", "developer", "user") and (not opening or opening[-1][0] != "user"):
            opening.append([role, without_markup(message.get("content"))])
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
