"""Streams of typed events, as the Responses and Anthropic Messages APIs send them: every event's
data is a JSON object whose `type` is also the event's name (`event: <type>`), and the answer
ends with a terminal event instead of `[DONE]`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

from gateway.apis.base import StreamFailed, StreamReader
from gateway.apis.sse import decode_event
from gateway.errors import GatewayError, UpstreamError

_encode = msgspec.json.Encoder().encode
EVENT_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


def typed_frame(payload: dict[str, Any]) -> bytes:
    """One event: `event: <type>` then `data: <compact json>`."""
    return b"event: " + str(payload["type"]).encode() + b"\ndata: " + _encode(payload) + b"\n\n"


class TypedEventReader(StreamReader):
    """Relays each event under its own name. Subclasses name the terminal events and read the
    answer's id."""

    terminal: frozenset[str] = frozenset()

    def __init__(self, error_frame: Callable[[GatewayError], bytes]) -> None:
        self._error_frame = error_frame
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def frames(self, data: str) -> list[bytes]:
        try:
            event = decode_event(data)
        except ValueError:
            raise self._failed(f"upstream sent an event that is not JSON: {data[:200]!r}") from None
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(kind, str) or not EVENT_NAME.fullmatch(kind):
            # The name goes on the client's `event:` line: a CR or LF in it would forge events.
            raise self._failed(f"upstream sent an event without a valid type: {data[:200]!r}")
        if kind == "error":
            self._ended = True
            raise StreamFailed(typed_frame(event))  # the upstream's own error, as it sent it
        self.seen(event)
        if kind in self.terminal:
            self._ended = self.complete = True
        if "\n" in data or "\r" in data:
            return [typed_frame(event)]  # multi-line data: re-encoded onto one line
        return [b"event: " + kind.encode() + b"\ndata: " + data.encode() + b"\n\n"]

    def seen(self, event: dict[str, Any]) -> None:
        """Hook for subclasses: look at one event (its id, its usage)."""

    def _failed(self, message: str) -> StreamFailed:
        error: GatewayError = UpstreamError(message)
        return StreamFailed(self._error_frame(error))
