"""OpenAI Responses (`POST /v1/responses`).

The user turns are `input` itself when it is a string, else each user item's text parts
(`input_text`, or a plain string content), with tool outputs marking the agent's loop
(`gateway.human_text`). Codex's session comes in its `session-id` header and
`prompt_cache_key`. A call with
`previous_response_id` continues a response that only the upstream which made it can find: the
flow pins it there (`Call.previous_id`, `Provider.answer_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.apis.base import Provider, StreamReader
from gateway.apis.openai_chat import forwarded, header_session, user_session, without_markup
from gateway.apis.schema import model_name, parse_body, stream_flag
from gateway.apis.typed_events import TypedEventReader, typed_frame
from gateway.errors import GatewayError, InvalidRequest
from gateway.ledger.pricing import Usage
from gateway.routing.call import Call
from gateway.routing.human_text import content_text


class Responses(Provider):
    name = "responses"
    path = "/responses"

    def parse(self, raw: bytes, headers: Mapping[str, str], *, max_messages: int) -> Call:
        body = parse_body(raw)
        model = model_name(body)
        items = body.get("input")
        if items is not None and not isinstance(items, str | list):
            raise InvalidRequest("'input' must be a string or an array of items", param="input")
        if isinstance(items, list) and len(items) > max_messages:
            raise InvalidRequest(
                f"'input' has {len(items)} items; at most {max_messages} are accepted",
                param="input",
            )
        previous = body.get("previous_response_id")
        if previous is not None and not isinstance(previous, str):
            raise InvalidRequest(
                "'previous_response_id' must be a string", param="previous_response_id"
            )
        opening = [items] if isinstance(items, str) else (items or [])[:1]
        opening = [
            without_markup(item.get("content")) if isinstance(item, dict) else item
            for item in opening
        ]
        seed = msgspec.json.encode([body.get("instructions"), opening]).decode()
        history = previous is not None or any(
            isinstance(item, dict) and item.get("role") == "assistant" for item in items or []
        )
        return Call(
            model,
            stream_flag(body),
            body,
            user_texts(items),
            headers=forwarded(headers),
            previous_id=previous,
            conversation_seed=seed,
            has_history=history,
            session=header_session(headers) or user_session(body),
        )

    def answer_id(self, answer: dict[str, Any]) -> str | None:
        return _response_id(answer)

    def error_frame(self, error: GatewayError) -> bytes:
        return typed_frame(
            {"type": "error", "code": error.code, "message": error.message, "param": error.param}
        )

    def reader(self, call: Call) -> StreamReader:
        return ResponsesReader(self.error_frame)


class ResponsesReader(TypedEventReader):
    terminal = frozenset({"response.completed", "response.failed", "response.incomplete"})

    def seen(self, event: dict[str, Any]) -> None:
        response = event.get("response")
        if self.answer_id is None and event["type"] == "response.created":
            self.answer_id = _response_id(response)
        if event["type"] in self.terminal and isinstance(response, dict):
            self.usage = Usage.from_openai(response.get("usage"))


def user_texts(items: str | list[Any] | None) -> tuple[str, ...]:
    """The user turns of `input`, oldest first: each user message's text, '' for each tool
    output item (`function_call_output` and the like: a turn of the agent's loop)."""
    if isinstance(items, str):
        return (items,)
    texts: list[str] = []
    for item in items or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") == "user":
            texts.append(content_text(item.get("content")))
        elif isinstance(kind, str) and kind.endswith("_output"):
            texts.append("")
    return tuple(texts)


def _response_id(response: Any) -> str | None:
    if isinstance(response, dict) and isinstance(response.get("id"), str):
        return str(response["id"])
    return None
