"""Parsing and validating request bodies into typed values; every problem is an
`InvalidRequest` naming the offending `param`.

Whatever bytes a client sends, parsing ends in a typed value or an `InvalidRequest`: invalid
UTF-8 (raw, or as lone surrogate escapes), JSON nested deeper than `MAX_JSON_DEPTH`, and wrong
types at any depth the gateway reads are all 400s, never an exception that becomes a 500.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.errors import InvalidRequest

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a request body. Chat bodies nest about 6
levels, tool schemas a dozen more: 64 refuses only bodies built to be deep."""

# msgspec refuses lone surrogates, sometimes as "Input data was truncated": looked for only
# once decoding failed, to name the real problem.
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat completion request. `body` is the client's JSON, untouched."""

    model: str
    messages: list[Any]
    stream: bool
    body: dict[str, Any]


def parse_body(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object; every API's parser starts here."""
    if not raw.strip():
        raise InvalidRequest("The request body is empty: send a JSON request body")
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        if _LONE_SURROGATE.search(raw):
            raise InvalidRequest(
                "The request body holds a \\uD800-\\uDFFF escape that is not part of a "
                "surrogate pair: JSON strings must be valid Unicode"
            ) from None
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise InvalidRequest(
            "The request body holds bytes that are not valid UTF-8: send JSON encoded as UTF-8"
        ) from None
    except RecursionError:
        # msgspec stops cleanly at the interpreter's recursion limit, far past MAX_JSON_DEPTH.
        raise _too_deep() from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    if _depth_exceeds(body, MAX_JSON_DEPTH):
        raise _too_deep()
    return body


def _too_deep() -> InvalidRequest:
    return InvalidRequest(
        f"The request body nests JSON arrays and objects more than {MAX_JSON_DEPTH} levels deep",
        code="json_too_deep",
    )


def _depth_exceeds(value: dict[str, Any], max_depth: int) -> bool:
    """Whether `value` nests containers deeper than `max_depth` (the top level is depth 1).
    Iterative: a deep body must not exhaust the stack of the check meant to refuse it."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def model_name(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("'model' is required and must be a model name string", param="model")
    return model


def stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    return stream


def parse_chat_request(raw: bytes, *, max_messages: int) -> ChatRequest:
    """Chat Completions and Anthropic Messages: both carry `messages`. Only what the gateway
    reads is checked (`model`, `stream`, that `messages` is a bounded, non-empty array); roles,
    content blocks and every other field go upstream as the client sent them, and the upstream
    answers for them in its own words."""
    body = parse_body(raw)
    model = model_name(body)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' is required and must be an array", param="messages")
    if not messages:
        raise InvalidRequest("'messages' must contain at least one message", param="messages")
    if len(messages) > max_messages:
        raise InvalidRequest(
            f"'messages' has {len(messages)} messages; at most {max_messages} are accepted",
            param="messages",
        )
    return ChatRequest(model=model, messages=messages, stream=stream_flag(body), body=body)
