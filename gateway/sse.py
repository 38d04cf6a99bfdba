"""Server-sent events: parse an upstream's bytes into events, frame events for clients.

Upstreams frame events loosely: CRLF or CR line ends, an event split across reads (even inside a
CRLF), several events in one read, comments and `event:` lines, multi-line `data:`. Clients are
strict (Chuanhu json-parses every line that is not blank or `: keep-alive`), so the gateway
re-frames every event as exactly `data: <one-line json>\\n\\n` and repairs chunks the strict
clients mis-read.
"""

from __future__ import annotations

from typing import Any

import msgspec

DONE = "[DONE]"
DONE_FRAME = b"data: [DONE]\n\n"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class SSEParser:
    """Incremental parser: `feed(bytes)` returns the `data` of every event completed so far.

    Follows the SSE spec's line rules (CR, LF or CRLF end a line; a blank line ends an event;
    `data:` lines join with LF; one space after the colon is dropped; other fields and comments
    are ignored). `close()` returns an event left without its final blank line, so nothing the
    upstream sent is dropped.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._skip_lf = False

    def feed(self, chunk: bytes) -> list[str]:
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        buffer = self._buffer + chunk
        events: list[str] = []
        start = 0
        size = len(buffer)
        while start < size:
            lf = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start, lf if lf >= 0 else size)
            if cr >= 0:
                end, nxt = cr, cr + 1
                if nxt < size and buffer[nxt : nxt + 1] == b"\n":
                    nxt += 1
                elif nxt == size:
                    self._skip_lf = True  # a CRLF split across two reads
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            self._line(buffer[start:end], events)
            start = nxt
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[str]:
        events: list[str] = []
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = b""
        if self._data:
            self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[str]) -> None:
        if not line:
            if self._data:
                events.append(b"\n".join(self._data).decode("utf-8", "replace"))
                self._data = []
            return
        if line.startswith(b"data"):
            rest = line[4:]
            if not rest:
                self._data.append(b"")
            elif rest[:1] == b":":
                value = rest[1:]
                self._data.append(value[1:] if value[:1] == b" " else value)
            # "datafoo: x" is another field name: ignored, like every unknown field.


def frame(payload: Any) -> bytes:
    """One client event: `data: <compact json>\\n\\n`."""
    return b"data: " + _encode(payload) + b"\n\n"


class ChunkRepair:
    """Makes each upstream chunk safe for strict clients.

    - every choice gets a `finish_reason` key (null until the end): Chuanhu drops the text of a
      choice without one;
    - a chunk carrying both content and a finish_reason is split into the content (with a null
      finish_reason) and an empty-delta chunk with the finish_reason: Chuanhu stops reading at a
      `stop` chunk before it shows that chunk's content.
    """

    def __init__(self) -> None:
        self.finished = False

    def frames(self, chunk: dict[str, Any]) -> list[bytes]:
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return [frame(chunk)]
        tail: list[dict[str, Any]] = []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            reason = choice.setdefault("finish_reason", None)
            if reason is None:
                continue
            self.finished = True
            delta = choice.get("delta")
            if isinstance(delta, dict) and any(v not in (None, "", []) for v in delta.values()):
                tail.append({"index": choice.get("index", 0), "delta": {}, "finish_reason": reason})
                choice["finish_reason"] = None
        if not tail:
            return [frame(chunk)]
        rest = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
        return [frame(chunk), frame({**rest, "choices": tail})]


def decode_event(data: str) -> Any:
    """Parse one event's data as JSON; `ValueError` when it is not."""
    try:
        return _decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None
