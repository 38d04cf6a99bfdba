"""Recording fake upstream for the real Claude Code / Codex CLIs (scratch tool).

Speaks just enough of the Anthropic Messages API and the OpenAI Responses API
for ``claude -p`` and ``codex exec``.  Every request (method, path+query,
headers, JSON body) is appended as one JSON line to the log file.

Scripted behaviour (decided per request, no state needed):

* Anthropic ``POST /v1/messages``: if the last user message carries a
  ``tool_result`` block -> answer text ``"FINAL: <first 40 chars of result>"``;
  elif the last user text contains ``READFILE:<path>`` -> answer a ``tool_use``
  block for ``Read`` with ``{"file_path": <path>}``; else answer ``"4"``.
* OpenAI ``POST /v1/responses``: if ``input`` has a ``function_call_output``
  item -> text ``"FINAL: ..."``; elif the last user text contains
  ``RUNCMD:<cmd>`` -> a ``function_call`` for the shell tool found in
  ``tools`` (shape adapted to its name); else text ``"4"``.

Usage: python fake_upstream.py LOGFILE PORTFILE
"""

from __future__ import annotations

import json
import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOCK = threading.Lock()


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                out.append(block["text"])
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log_path = "requests.jsonl"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _record(self, body: Any) -> None:
        rec = {
            "method": self.command,
            "path": self.path,
            "headers": {k: v for k, v in self.headers.items()},
            "body": body,
        }
        with LOCK, open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")

    def _read_body(self) -> Any:
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"_raw": raw.decode("utf-8", "replace")}

    def _json(self, code: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _sse(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        for name, data in events:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True

    # -- routing -----------------------------------------------------------
    def do_HEAD(self) -> None:
        self._record(None)
        self._json(200, {})

    def do_GET(self) -> None:
        self._record(None)
        path = self.path.split("?")[0]
        if path.endswith("/models"):
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": "router", "object": "model", "created": 0, "owned_by": "fake"},
                    ],
                    "models": [],
                },
            )
        else:
            self._json(200, {})

    def do_POST(self) -> None:
        body = self._read_body()
        self._record(body)
        path = self.path.split("?")[0]
        if path.endswith("/v1/messages/count_tokens"):
            self._json(200, {"input_tokens": 42})
        elif path.endswith("/v1/messages"):
            self._anthropic(body or {})
        elif path.endswith("/responses"):
            self._responses(body or {})
        else:
            self._json(404, {"error": {"type": "not_found", "message": path}})

    # -- Anthropic ---------------------------------------------------------
    def _anthropic(self, body: dict[str, Any]) -> None:
        msgs = body.get("messages") or []
        # The last *user* message: with unrecognised model ids Claude Code
        # appends a role "system" message after it.
        users = [m for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
        last = users[-1] if users else {}
        content = last.get("content")
        tool_result = None
        if isinstance(content, list):
            for b in content:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    tool_result = b
        blocks: list[dict[str, Any]]
        stop = "end_turn"
        if tool_result is not None:
            res = tool_result.get("content")
            txt = res if isinstance(res, str) else " ".join(_texts(res))
            blocks = [{"type": "text", "text": "FINAL: " + txt.strip()[:60]}]
        else:
            joined = "\n".join(_texts(content))
            m = re.search(r"READFILE:(\S+)", joined)
            if m:
                blocks = [
                    {
                        "type": "tool_use",
                        "id": "toolu_" + uuid.uuid4().hex[:20],
                        "name": "Read",
                        "input": {"file_path": m.group(1)},
                    }
                ]
                stop = "tool_use"
            else:
                blocks = [{"type": "text", "text": "4"}]
        model = body.get("model", "x")
        mid = "msg_" + uuid.uuid4().hex[:20]
        usage = {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        if not body.get("stream"):
            self._json(
                200,
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": blocks,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": usage,
                },
            )
            return
        ev: list[tuple[str, dict[str, Any]]] = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": mid,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {**usage, "output_tokens": 1},
                    },
                },
            )
        ]
        for i, b in enumerate(blocks):
            if b["type"] == "text":
                ev.append(
                    (
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": i,
                            "content_block": {"type": "text", "text": ""},
                        },
                    )
                )
                ev.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": i,
                            "delta": {"type": "text_delta", "text": b["text"]},
                        },
                    )
                )
            else:
                ev.append(
                    (
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": i,
                            "content_block": {**b, "input": {}},
                        },
                    )
                )
                ev.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": i,
                            "delta": {
                                "type": "input_json_delta",
                                "partial_json": json.dumps(b["input"]),
                            },
                        },
                    )
                )
            ev.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
        ev.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": 5},
                },
            )
        )
        ev.append(("message_stop", {"type": "message_stop"}))
        self._sse(ev)

    # -- OpenAI Responses --------------------------------------------------
    def _responses(self, body: dict[str, Any]) -> None:
        items = body.get("input") or []
        fco = [i for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]
        user_text = ""
        for i in items:
            if isinstance(i, dict) and i.get("role") == "user":
                user_text = "\n".join(
                    c.get("text", "") for c in (i.get("content") or []) if isinstance(c, dict)
                )
        rid = "resp_" + uuid.uuid4().hex[:20]
        model = body.get("model", "x")
        out_item: dict[str, Any]
        m = re.search(r"RUNCMD:(.+?)(?:$|\n|<)", user_text)
        if fco:
            out = fco[-1].get("output")
            txt = out if isinstance(out, str) else json.dumps(out)
            out_item = {
                "type": "message",
                "id": "msg_" + uuid.uuid4().hex[:16],
                "role": "assistant",
                "status": "completed",
                "content": [
                    {
                        "type": "output_text",
                        "annotations": [],
                        "text": "FINAL: " + txt.strip()[:200],
                    }
                ],
            }
        elif m:
            cmd = m.group(1).strip()
            names = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
            if "exec_command" in names:
                name, args = "exec_command", {"cmd": cmd}
            elif "shell_command" in names:
                name, args = "shell_command", {"command": cmd}
            else:
                name, args = "shell", {"command": ["bash", "-lc", cmd]}
            out_item = {
                "type": "function_call",
                "id": "fc_" + uuid.uuid4().hex[:16],
                "status": "completed",
                "name": name,
                "arguments": json.dumps(args),
                "call_id": "call_" + uuid.uuid4().hex[:16],
            }
        else:
            out_item = {
                "type": "message",
                "id": "msg_" + uuid.uuid4().hex[:16],
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "annotations": [], "text": "4"}],
            }
        base = {
            "id": rid,
            "object": "response",
            "created_at": 0,
            "model": model,
            "status": "in_progress",
            "output": [],
        }
        ev: list[tuple[str, dict[str, Any]]] = [
            (
                "response.created",
                {"type": "response.created", "sequence_number": 0, "response": base},
            ),
            (
                "response.in_progress",
                {"type": "response.in_progress", "sequence_number": 1, "response": base},
            ),
        ]
        seq = 2
        if out_item["type"] == "message":
            text = out_item["content"][0]["text"]
            added = {**out_item, "status": "in_progress", "content": []}
            ev += [
                (
                    "response.output_item.added",
                    {"type": "response.output_item.added", "output_index": 0, "item": added},
                ),
                (
                    "response.content_part.added",
                    {
                        "type": "response.content_part.added",
                        "item_id": out_item["id"],
                        "output_index": 0,
                        "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": []},
                    },
                ),
                (
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "item_id": out_item["id"],
                        "output_index": 0,
                        "content_index": 0,
                        "delta": text,
                    },
                ),
                (
                    "response.output_text.done",
                    {
                        "type": "response.output_text.done",
                        "item_id": out_item["id"],
                        "output_index": 0,
                        "content_index": 0,
                        "text": text,
                    },
                ),
                (
                    "response.content_part.done",
                    {
                        "type": "response.content_part.done",
                        "item_id": out_item["id"],
                        "output_index": 0,
                        "content_index": 0,
                        "part": out_item["content"][0],
                    },
                ),
            ]
        else:
            ev += [
                (
                    "response.output_item.added",
                    {
                        "type": "response.output_item.added",
                        "output_index": 0,
                        "item": {**out_item, "arguments": "", "status": "in_progress"},
                    },
                ),
                (
                    "response.function_call_arguments.delta",
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": out_item["id"],
                        "output_index": 0,
                        "delta": out_item["arguments"],
                    },
                ),
                (
                    "response.function_call_arguments.done",
                    {
                        "type": "response.function_call_arguments.done",
                        "item_id": out_item["id"],
                        "output_index": 0,
                        "arguments": out_item["arguments"],
                    },
                ),
            ]
        ev.append(
            (
                "response.output_item.done",
                {"type": "response.output_item.done", "output_index": 0, "item": out_item},
            )
        )
        done = {
            **base,
            "status": "completed",
            "output": [out_item],
            "usage": {
                "input_tokens": 10,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 5,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 15,
            },
        }
        ev.append(("response.completed", {"type": "response.completed", "response": done}))
        for i, (_, d) in enumerate(ev):
            d.setdefault("sequence_number", seq + i)
        self._sse(ev)


def main() -> None:
    Handler.log_path = sys.argv[1]
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[2], "w") as fh:
        fh.write(str(srv.server_address[1]))
    srv.serve_forever()


if __name__ == "__main__":
    main()
