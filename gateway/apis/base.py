"""The provider seam: what differs between upstream protocols, behind one small interface.

A `Provider` is one HTTP API that clients call and upstreams serve (OpenAI Chat Completions,
OpenAI Responses, Anthropic Messages). The gateway never translates between them: a request
arriving on one API goes upstream on the same API. So one provider covers both sides:

- the client side: `parse` validates a body into a `Call` (model, stream, the text to classify),
  and `error_body` renders the gateway's errors in the API's own shape;
- the upstream side: `request` builds the path, auth headers and body (model rewritten),
  `upstream_error` reads an upstream's error answer, and `reader()` follows one stream's events,
  re-framing them for the client and knowing when the answer is complete.

Everything else (decide → open with fallback and breaker → relay → account) is written once, in
`gateway.flow` and `gateway.upstream`, and knows no protocol.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.errors import GatewayError, UpstreamStatus, error_body
from gateway.ledger.pricing import Usage
from gateway.ledger.writer import Api
from gateway.routing.call import Call
from gateway.settings.upstreams import Upstream, UpstreamKind

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    path: str
    """Appended to the upstream's base URL, e.g. '/chat/completions'."""
    headers: dict[str, str]
    content: bytes


@dataclass(frozen=True, slots=True)
class AnswerFacts:
    id: str | None
    usage: Usage | None


class StreamFailed(Exception):
    """An upstream stream broke its protocol (an event that is not JSON, an error event...).
    `frame` is what the client receives instead; the relay then stops."""

    def __init__(self, frame: bytes) -> None:
        super().__init__("upstream stream failed")
        self.frame = frame


class StreamReader(ABC):
    """Follows one upstream stream: one call per event, in order."""

    complete = False
    """True once the upstream said the answer is whole (its own end-of-answer event)."""
    answer_id: str | None = None
    """The upstream's id for this answer, once an event named it (see `Provider.answer_id`)."""
    usage: Usage | None = None
    """The tokens the upstream reported for this answer, once it did."""

    @abstractmethod
    def frames(self, data: str) -> list[bytes]:
        """The client frames for one upstream event's `data`; `StreamFailed` when it breaks the
        protocol. After `ended` is true, the relay stops reading."""

    @property
    def ended(self) -> bool:
        """The upstream's last event has been relayed: nothing more is read."""
        return False

    def closing_frames(self) -> list[bytes]:
        """Sent when the upstream closed the stream after a complete answer (e.g. `[DONE]`
        for Chat Completions when the upstream forgot it)."""
        return []


class Provider(ABC):
    """One API, on both sides of the gateway. Subclasses hold no per-request state."""

    name: Api
    """Used in logs, metrics and the ledger."""
    upstream_kind: UpstreamKind = "openai"
    """The kind of upstream that serves this API."""
    path: str
    """The upstream path, appended to the upstream's base URL."""
    routable = True
    """False for APIs only served for models named directly (embeddings, legacy completions)."""

    @abstractmethod
    def parse(self, raw: bytes, headers: Mapping[str, str], *, max_messages: int) -> Call:
        """Validate a client body (and the API's own headers); `InvalidRequest` naming the
        problem."""

    def facts(self, content: bytes) -> AnswerFacts:
        """What the flow records of a whole (non-streamed) answer."""
        try:
            answer = _decode(content)
        except msgspec.DecodeError:
            return AnswerFacts(None, None)
        if not isinstance(answer, dict):
            return AnswerFacts(None, None)
        return AnswerFacts(self.answer_id(answer), self.usage(answer))

    def answer_id(self, answer: dict[str, Any]) -> str | None:
        """The id of an answer, for APIs whose later calls can refer to it."""
        return None

    def usage(self, answer: dict[str, Any]) -> Usage | None:
        """The tokens an answer reports (OpenAI's `usage` unless overridden)."""
        return Usage.from_openai(answer.get("usage"))

    def request(self, upstream: Upstream, upstream_model: str, call: Call) -> UpstreamRequest:
        """The upstream request: `call.body` with only `model` rewritten, the API's own
        headers, and the upstream's auth. The client's credentials are never forwarded."""
        headers = {
            **call.headers,
            "content-type": "application/json",
            "accept": "text/event-stream" if call.stream else "application/json",
            **self.auth_headers(upstream),
        }
        content = _encode({**call.body, "model": upstream_model})
        return UpstreamRequest(self.target(call), headers, content)

    def target(self, call: Call) -> str:
        """The upstream path, with the client's query string."""
        return f"{self.path}?{call.query}" if call.query else self.path

    def auth_headers(self, upstream: Upstream) -> dict[str, str]:
        return {"authorization": f"Bearer {upstream.api_key}"} if upstream.api_key else {}

    def upstream_error(
        self, status: int, payload: Any, raw: bytes, headers: Mapping[str, str]
    ) -> UpstreamStatus:
        """An upstream's error answer (status ≥ 400; `payload` is its JSON, or None when the
        body was not a JSON object). Both OpenAI's and Anthropic's shapes keep the message under
        `error`, so one reading serves both; a body in neither shape becomes a generic error."""
        if not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
            text = raw[:500].decode("utf-8", "replace").strip()
            message = f"upstream answered HTTP {status}" + (f": {text}" if text else "")
            payload = error_body(message, "upstream_error", code="upstream_error")
        kept = {k: v for k, v in headers.items() if k.lower() in ("retry-after", "retry-after-ms")}
        return UpstreamStatus(status, payload, headers=kept)

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        """The gateway's error in this API's own shape (OpenAI's unless overridden)."""
        return error.body()

    def error_frame(self, error: GatewayError) -> bytes:
        """A failure after the first byte, as one stream event of this API."""
        return b"data: " + _encode(self.error_body(error)) + b"\n\n"

    @abstractmethod
    def reader(self, call: Call) -> StreamReader:
        """A reader for the upstream stream answering `call`."""
