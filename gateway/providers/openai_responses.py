"""OpenAI Responses (`POST /v1/responses`).

The text classified is the latest user input: `input` itself when it is a string, else the last
user item's text parts (`input_text`, or a plain string content). A call with
`previous_response_id` continues a response that only the upstream which made it can find: the
flow pins it there (`Call.previous_id`, `Provider.answer_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.errors import GatewayError, InvalidRequest
from gateway.pricing import Usage
from gateway.providers.base import Call, Provider, StreamReader
from gateway.providers.typed_events import TypedEventReader, typed_frame
from gateway.schema import model_name, parse_body, stream_flag


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
        seed = msgspec.json.encode([body.get("instructions"), opening]).decode()
        history = previous is not None or any(
            isinstance(item, dict) and item.get("role") == "assistant" for item in items or []
        )
        return Call(
            model,
            stream_flag(body),
            body,
            latest_user_text(items),
            previous_id=previous,
            conversation_seed=seed,
            has_history=history,
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


def latest_user_text(items: str | list[Any] | None) -> str:
    if isinstance(items, str):
        return items.strip()
    for item in reversed(items or []):
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        if item.get("type", "message") != "message":
            continue
        content = item.get("content")
        if isinstance(content, str):
            text = content.strip()
        elif isinstance(content, list):
            text = "\n".join(
                part["text"]
                for part in content
                if isinstance(part, dict)
                and part.get("type") in ("input_text", "text")
                and isinstance(part.get("text"), str)
            ).strip()
        else:
            text = ""
        if text:
            return text
    return ""


def _response_id(response: Any) -> str | None:
    if isinstance(response, dict) and isinstance(response.get("id"), str):
        return str(response["id"])
    return None
