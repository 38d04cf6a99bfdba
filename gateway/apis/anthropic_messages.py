"""Anthropic Messages (`POST /v1/messages`), for upstreams of `kind: anthropic`.

Upstreams get the key as `x-api-key` and an `anthropic-version` (the client's, else
`DEFAULT_VERSION`); `anthropic-beta` is passed on. Errors reach clients in Anthropic's shape,
`{"type": "error", "error": {"type", "message"}}`, and a stream ends at `message_stop`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from gateway.apis.base import Provider, StreamReader
from gateway.apis.openai_chat import conversation_marks
from gateway.apis.schema import parse_chat_request
from gateway.apis.typed_events import TypedEventReader, typed_frame
from gateway.errors import GatewayError, UpstreamStatus
from gateway.ledger.pricing import Usage
from gateway.routing.call import Call, Session
from gateway.routing.human_text import user_texts
from gateway.settings.upstreams import Upstream

DEFAULT_VERSION = "2023-06-01"
FORWARDED_PREFIX = "anthropic-"
"""Every `anthropic-*` header (version, beta, ...) goes upstream as the client sent it."""
SESSION_PART = re.compile(r"_session_([0-9A-Za-z-]+)$")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class AnthropicMessages(Provider):
    name = "messages"
    upstream_kind = "anthropic"
    path = "/messages"

    def parse(self, raw: bytes, headers: Mapping[str, str], *, max_messages: int) -> Call:
        chat = parse_chat_request(raw, max_messages=max_messages)
        forwarded = {k: v for k, v in headers.items() if k.lower().startswith(FORWARDED_PREFIX)}
        forwarded.setdefault("anthropic-version", DEFAULT_VERSION)
        seed, has_history = conversation_marks(chat.messages, chat.body.get("system"))
        return Call(
            chat.model,
            chat.stream,
            chat.body,
            user_texts(chat.messages),
            headers=forwarded,
            conversation_seed=seed,
            has_history=has_history,
            session=metadata_session(chat.body.get("metadata")),
        )

    def auth_headers(self, upstream: Upstream) -> dict[str, str]:
        return {"x-api-key": upstream.api_key} if upstream.api_key else {}

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        if (
            isinstance(error, UpstreamStatus)
            and error.status < 500
            and error.payload.get("type") == "error"
        ):
            return error.payload  # the upstream's own Anthropic error, as it wrote it
        kind = ERROR_TYPES.get(error.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": error.message}}

    def error_frame(self, error: GatewayError) -> bytes:
        return typed_frame(self.error_body(error))

    def usage(self, answer: dict[str, Any]) -> Usage | None:
        return Usage.from_anthropic(answer.get("usage"))

    def reader(self, call: Call) -> StreamReader:
        return MessagesReader(self.error_frame)


def metadata_session(metadata: Any) -> Session | None:
    """The session part of `metadata.user_id`. Claude Code writes it as
    `user_<hash>_account_<uuid>_session_<uuid>`, or as a JSON object with `session_id`; any
    other value is the client's user id."""
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(user_id, str) or not user_id.strip():
        return None
    user_id = user_id.strip()
    try:
        parsed = json.loads(user_id)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("session_id"), str):
        return Session(f"session:{parsed['session_id']}", durable=True)
    match = SESSION_PART.search(user_id)
    if match:
        return Session(f"session:{match[1]}", durable=True)
    return Session(f"user:{user_id}", durable=False)


class MessagesReader(TypedEventReader):
    terminal = frozenset({"message_stop"})

    def __init__(self, error_frame: Callable[[GatewayError], bytes]) -> None:
        super().__init__(error_frame)
        self._started: Any = None

    def seen(self, event: dict[str, Any]) -> None:
        """`message_start` carries the id and the input tokens; each `message_delta` the output
        tokens so far."""
        if event["type"] == "message_start" and isinstance(event.get("message"), dict):
            message = event["message"]
            if isinstance(message.get("id"), str):
                self.answer_id = message["id"]
            self._started = message.get("usage")
            self.usage = Usage.from_anthropic(self._started)
        elif event["type"] == "message_delta" and isinstance(event.get("usage"), dict):
            self.usage = Usage.from_anthropic(self._started, event["usage"].get("output_tokens"))
