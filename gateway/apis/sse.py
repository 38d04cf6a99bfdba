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


class EventTooLarge(ValueError):
    """An upstream event, or one line of it, grew past the parser's `max_event_bytes`."""


class SSEParser:
    """Incremental parser: `feed(bytes)` returns the `data` of every event completed so far.

    Follows the SSE spec's line rules (CR, LF or CRLF end a line; a blank line ends an event;
    `data:` lines join with LF; one space after the colon is dropped; other fields and comments
    are ignored). `close()` returns an event left without its final blank line, so nothing the
    upstream sent is dropped.

    Work is linear in the bytes fed: each byte is searched once for LF and once for CR, and
    only the incomplete last line is kept between reads. `max_event_bytes` bounds memory: once
    an event's data, or a line still waiting for its end, exceeds it, `feed` raises
    `EventTooLarge`. `scanned` counts the bytes the line-end searches examined.
    """

    def __init__(self, max_event_bytes: int | None = None) -> None:
        self._max_event_bytes = max_event_bytes
        self._partial = bytearray()
        self._data: list[bytes] = []
        self._data_bytes = 0
        self._skip_lf = False
        self.scanned = 0

    def feed(self, chunk: bytes) -> list[str]:
        start, size = 0, len(chunk)
        if self._skip_lf and chunk[:1] == b"\n":
            start = 1
        self._skip_lf = False
        events: list[str] = []
        # Next LF / CR at or after `start`; -1 once the chunk has none left. Each is searched
        # for again only after `start` passed it, so no byte is examined twice for either.
        lf = self._find(chunk, b"\n", start)
        cr = self._find(chunk, b"\r", start)
        while start < size:
            if 0 <= lf < start:
                lf = self._find(chunk, b"\n", start)
            if 0 <= cr < start:
                cr = self._find(chunk, b"\r", start)
            if cr >= 0 and (lf < 0 or cr < lf):
                end, nxt = cr, cr + 1
                if nxt < size and chunk[nxt] == 0x0A:
                    nxt += 1
                elif nxt == size:
                    self._skip_lf = True  # a CRLF split across two reads
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            if self._partial:
                self._partial += chunk[start:end]
                line = bytes(self._partial)
                self._partial.clear()
            else:
                line = chunk[start:end]
            self._line(line, events)
            start = nxt
        self._partial += chunk[start:]
        self._check_size()
        return events

    def close(self) -> list[str]:
        events: list[str] = []
        if self._partial:
            self._line(bytes(self._partial), events)
            self._partial.clear()
        if self._data:
            self._line(b"", events)
        return events

    def _find(self, chunk: bytes, byte: bytes, start: int) -> int:
        found = chunk.find(byte, start)
        self.scanned += (found if found >= 0 else len(chunk)) - start + (found >= 0)
        return found

    def _check_size(self) -> None:
        limit = self._max_event_bytes
        if limit is not None and self._data_bytes + len(self._partial) > limit:
            raise EventTooLarge(f"an event over {limit} bytes (ROUTELLM_MAX_EVENT_BYTES)")

    def _line(self, line: bytes, events: list[str]) -> None:
        if not line:
            if self._data:
                events.append(b"\n".join(self._data).decode("utf-8", "replace"))
                self._data = []
                self._data_bytes = 0
            return
        if line.startswith(b"data"):
            rest = line[4:]
            value = b""
            if rest[:1] == b":":
                value = rest[1:]
                value = value[1:] if value[:1] == b" " else value
            elif rest:
                return  # "datafoo: x" is another field name: ignored, like every unknown field.
            self._data.append(value)
            self._data_bytes += len(value) + 1
            self._check_size()


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
