"""The one request flow, the same for every API: decide → open (fallback, breakers) → relay →
account. No HTTP framework and no protocol here: handlers call in with a `Provider` and a `Call`."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import httpx

from classifier.base import Classifier
from gateway.conversations import HEADER as CONVERSATION_HEADER
from gateway.conversations import Conversation, Conversations
from gateway.errors import GatewayError, Overloaded
from gateway.metrics import Metrics, log_request
from gateway.providers.base import Call, Provider
from gateway.routing import Decider, Decision
from gateway.settings import Settings
from gateway.state import MemoryStore, Store
from gateway.upstream import Forwarder, Opened


@dataclass
class Answer:
    """An upstream answer ready for the client: JSON `content`, or `frames` to stream."""

    decision: Decision
    status: int
    headers: dict[str, str]
    media_type: str
    content: bytes = b""
    frames: Relay | None = None


class Relay:
    """The client frames of a streamed answer. However the stream ends (finished, failed, the
    client gone, or never iterated at all), `aclose()` closes the upstream response and settles
    the request's bookkeeping exactly once; iteration calls it itself when it ends."""

    def __init__(
        self, frames: AsyncGenerator[bytes, None], opened: Opened, settle: Callable[[int], None]
    ) -> None:
        self._frames = frames
        self._opened = opened
        self._settle: Callable[[int], None] | None = settle

    def __aiter__(self) -> Relay:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await anext(self._frames)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        settle, self._settle = self._settle, None
        if settle is None:
            return
        try:
            await self._frames.aclose()
            await self._opened.response.aclose()
        finally:
            settle(self._opened.status)


class Gateway:
    """Everything a request needs, built once per app: settings, decider, forwarder, metrics,
    conversations (their state in `store`; default: this process's memory)."""

    def __init__(
        self,
        settings: Settings,
        classifier: Classifier,
        client: httpx.AsyncClient,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        self.decider = Decider(settings, classifier)
        self.forwarder = Forwarder(settings, client)
        self.metrics = Metrics()
        self.conversations = Conversations(
            settings.conversation_policy, store or MemoryStore(), settings.conversation_ttl
        )

    async def decide(
        self, call: Call, conversation: Conversation | None = None, *, record: bool = True
    ) -> Decision:
        """The decision for `call`; within `conversation`, the policy may keep its model
        (`record=False`: without updating the conversation's state)."""
        started = time.perf_counter()
        decision = await self.decider.decide(call.model, call.text)
        if decision.reason != "direct":
            self.metrics.classify_seconds += time.perf_counter() - started
            self.metrics.classify_count += 1
        if conversation is not None:
            decision = await self.conversations.settle(conversation, decision, record=record)
        return decision

    async def complete(
        self, provider: Provider, call: Call, conversation: Conversation | None = None
    ) -> Answer:
        """Decide, then open the upstream until its first byte. Streams are relayed lazily by
        `Answer.frames`; the caller must consume or close them. Every answer, and every
        `GatewayError` raised, carries the request id, the conversation and the decision in
        its headers."""
        exchange = Exchange(provider, call, conversation=conversation.id if conversation else None)
        cap = self.settings.max_concurrency
        if self.metrics.inflight >= cap:
            raise Overloaded(
                f"The gateway has {cap} requests in flight: retry shortly",
                headers={"retry-after": "1", **exchange.headers()},
            )
        self.metrics.inflight += 1
        handed_over = False
        try:
            exchange.decision = await self.decide(call, conversation)
            exchange.classify_ms = exchange.elapsed_ms()
            opened = await self.forwarder.open(provider, exchange.decision, call)
            if opened.decision.reason == "upstream_fallback":
                self.metrics.upstream_errors[(exchange.decision.model, "fallback")] += 1
            exchange.decision = opened.decision
            exchange.first_byte_ms = exchange.elapsed_ms()
            answer = self._answer(opened, exchange)
            handed_over = answer.frames is not None
            if not handed_over:
                self._done(exchange, opened.response.status_code)
            return answer
        except GatewayError as exc:
            if exchange.decision is not None:
                self.metrics.upstream_errors[(exchange.decision.model, str(exc.code))] += 1
            exc.headers = {**exchange.headers(), **exc.headers}
            self._done(exchange, exc.status)
            raise
        finally:
            if not handed_over:
                self.metrics.inflight -= 1

    def _answer(self, opened: Opened, exchange: Exchange) -> Answer:
        headers = {**opened.headers, **exchange.headers()}
        if not opened.streaming:
            media = opened.response.headers.get("content-type", "application/json")
            return Answer(
                opened.decision, opened.response.status_code, headers, media, opened.content
            )

        def settle(status: int) -> None:
            self.metrics.inflight -= 1
            self._done(exchange, status)

        relay = Relay(self.forwarder.relay(opened), opened, settle)
        return Answer(opened.decision, 200, headers, "text/event-stream", frames=relay)

    def _done(self, exchange: Exchange, status: int) -> None:
        """Account for one finished request: metrics and its log line."""
        decision = exchange.decision
        model = decision.model if decision else "-"
        reason = decision.reason if decision else "-"
        self.metrics.requests[(model, reason, status)] += 1
        timings = {
            name: value
            for name, value in (
                ("classify_ms", exchange.classify_ms),
                ("first_byte_ms", exchange.first_byte_ms),
            )
            if value is not None
        }
        log_request(
            self.settings.log_format,
            {
                "event": exchange.provider.name,
                "request_id": exchange.id,
                "requested": exchange.call.model,
                "model": model,
                "reason": reason,
                "label": decision.label if decision else None,
                "score": decision.score if decision else None,
                "status": status,
                "stream": exchange.call.stream,
                **timings,
                "total_ms": exchange.elapsed_ms(),
            },
        )


@dataclass
class Exchange:
    """One request on its way through the flow: what the account step records."""

    provider: Provider
    call: Call
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """The request id: `x-routellm-request-id`, the log line's and the ledger row's id."""
    started: float = field(default_factory=time.perf_counter)
    decision: Decision | None = None
    conversation: str | None = None
    """The conversation id (`x-routellm-conversation`), when the API has conversations."""
    classify_ms: float | None = None
    first_byte_ms: float | None = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def headers(self) -> dict[str, str]:
        decided = self.decision.headers() if self.decision else {}
        if self.conversation is not None:
            decided[CONVERSATION_HEADER] = self.conversation
        return {"x-routellm-request-id": self.id, **decided}
