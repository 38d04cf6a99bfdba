"""What the fake upstream answers on each API path: a whole answer, and the same as stream
frames (the last frame ends the answer: `[DONE]`, `response.completed` or `message_stop`)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

_ids = itertools.count(1)


def _data(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _typed(payload: dict[str, Any]) -> bytes:
    return b"event: " + payload["type"].encode() + b"\n" + _data(payload)


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


def chat_frames(model: str, body: dict[str, Any]) -> list[bytes]:
    """With `stream_options.include_usage`, as OpenAI streams: `"usage": null` on every chunk
    and a usage-only chunk (empty `choices`) before `[DONE]`."""
    chunks = stream_chunks(model)
    options = body.get("stream_options") or {}
    if options.get("include_usage"):
        chunks = [{**c, "usage": None} for c in chunks]
        usage = completion(model)["usage"]
        chunks.append({**chunks[0], "choices": [], "usage": usage})
    return [_data(c) for c in chunks] + [b"data: [DONE]\n\n"]


def response(model: str, rid: str, status: str = "completed") -> dict[str, Any]:
    text = f"Hello from {model}!"
    done = status == "completed"
    return {
        "id": rid,
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ]
        if done
        else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 3,
            "output_tokens": 4,
            "total_tokens": 7,
            "input_tokens_details": {"cached_tokens": 1},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        if done
        else None,
    }


def responses_answer(model: str) -> dict[str, Any]:
    return response(model, f"resp_{next(_ids)}")


def responses_frames(model: str, body: dict[str, Any]) -> list[bytes]:
    rid = f"resp_{next(_ids)}"
    item = {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant"}
    part = {"type": "output_text", "text": "", "annotations": []}
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response(model, rid, "in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "content": []}},
        {"type": "response.content_part.added", **where, "part": part},
        {"type": "response.output_text.delta", **where, "delta": "Hello", "logprobs": []},
        {"type": "response.output_text.delta", **where, "delta": f" from {model}!", "logprobs": []},
        {"type": "response.completed", "response": response(model, rid)},
    ]
    return [_typed({**e, "sequence_number": n}) for n, e in enumerate(events)]


def message(model: str) -> dict[str, Any]:
    return {
        "id": f"msg_{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": f"Hello from {model}!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }


def messages_frames(model: str, body: dict[str, Any]) -> list[bytes]:
    start = {**message(model), "content": [], "stop_reason": None}
    start["usage"] = {"input_tokens": 3, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": f" from {model}!"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 4},
        },
        {"type": "message_stop"},
    ]
    return [_typed(e) for e in events]


def _text_delta(text: str) -> dict[str, Any]:
    delta = {"type": "text_delta", "text": text}
    return {"type": "content_block_delta", "index": 0, "delta": delta}


def embedding(model: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, 0.5, 0.75]}],
        "model": model,
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }


def text_completion(model: str) -> dict[str, Any]:
    choice = {"text": f"Hello from {model}!", "index": 0, "logprobs": None, "finish_reason": "stop"}
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": 1,
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


def completion_frames(model: str, body: dict[str, Any]) -> list[bytes]:
    base = {"id": "cmpl-fake", "object": "text_completion", "created": 1, "model": model}
    texts = [("Hello", None), (f" from {model}", None), ("!", "stop")]
    chunks = [
        {**base, "choices": [{"text": t, "index": 0, "logprobs": None, "finish_reason": r}]}
        for t, r in texts
    ]
    return [_data(c) for c in chunks] + [b"data: [DONE]\n\n"]


def anthropic_error(status: int) -> dict[str, Any]:
    kind = "overloaded_error" if status == 529 else "fake_error"
    return {"type": "error", "error": {"type": kind, "message": f"fake upstream says {status}"}}


API = tuple[Callable[[str], dict[str, Any]], Callable[[str, dict[str, Any]], list[bytes]] | None]
APIS: dict[str, API] = {
    "/v1/chat/completions": (completion, chat_frames),
    "/v1/responses": (responses_answer, responses_frames),
    "/v1/messages": (message, messages_frames),
    "/v1/embeddings": (embedding, None),
    "/v1/completions": (text_completion, completion_frames),
}
