"""The one request flow, the same for every API: decide → open (fallback, breakers) → relay →
account. No HTTP framework and no protocol here: handlers call in with a `Provider` and a `Call`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass

import httpx
from opentelemetry.trace import SpanKind

from classifier.base import Classifier
from gateway.apis.base import Provider
from gateway.drain import Drain
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    Overloaded,
    ShuttingDown,
    UpstreamError,
    UpstreamStatus,
)
from gateway.exchange import Exchange
from gateway.ledger.pricing import cost
from gateway.ledger.writer import Ledger
from gateway.observe.logs import log_request
from gateway.observe.metrics import Telemetry
from gateway.observe.tracing import OPERATIONS, Tracing
from gateway.quality.shadow import Shadow
from gateway.routing.call import Call
from gateway.routing.conversations import Conversation, Conversations
from gateway.routing.decider import Decider, Decision
from gateway.routing.human_text import ChosenText, choose
from gateway.routing.state import MemoryStore, Store, StoreUnavailable
from gateway.settings.load import Settings
from gateway.upstream.forwarder import Forwarder, Opened

ANSWERS = "answers"
"""Store namespace: answer id → the model that made it (Responses' `previous_response_id`)."""


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
        self,
        frames: AsyncGenerator[bytes, None],
        opened: Opened,
        settle: Callable[[int], None],
        drain: Drain,
    ) -> None:
        self._frames = frames
        self._opened = opened
        self._settle: Callable[[int], None] | None = settle
        self._drain = drain

    def __aiter__(self) -> Relay:
        return self

    async def __anext__(self) -> bytes:
        if self._settle is None:
            raise StopAsyncIteration  # cut by the drain: its error event was the last frame
        try:
            async with self._drain.limit():
                return await anext(self._frames)
        except TimeoutError:
            # The shutdown grace is over: waiting was cancelled, which closes the upstream.
            self._opened.status = ShuttingDown.status
            await self.aclose()
            return self._opened.provider.error_frame(self._drain.cut())
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
    """Everything a request needs, built once per app: settings, decider, forwarder, the
    accounts (telemetry, ledger), and the state later calls depend on (conversations, answer
    owners) in `store` (default: this process's memory). `own_classifiers`: the routers with
    their own checkpoint (`gateway.routing.checkpoints`)."""

    def __init__(
        self,
        settings: Settings,
        classifier: Classifier,
        client: httpx.AsyncClient,
        *,
        telemetry: Telemetry | None = None,
        ledger: Ledger | None = None,
        store: Store | None = None,
        drain: Drain | None = None,
        tracing: Tracing | None = None,
        shadow: Shadow | None = None,
        own_classifiers: Mapping[str, Classifier] | None = None,
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        self.client = client
        self.decider = Decider(settings, classifier, own_classifiers)
        self.telemetry = telemetry or Telemetry(settings)
        self.ledger = ledger
        self.forwarder = Forwarder(settings, client, on_error=self._upstream_failed)
        self.inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.store = store or MemoryStore()
        self.conversations = Conversations(
            settings.conversation_policy,
            self.store,
            settings.conversation_ttl,
            settings.conversation_max_switches,
        )
        self._writes: set[asyncio.Task[None]] = set()
        self.drain = drain or Drain(settings.shutdown_grace)
        """Streams still running when the shutdown grace ends are cut (`gateway.drain`)."""
        self.tracing = tracing or Tracing(None)
        self.shadow = shadow
        """Judges a share of routed answers in the background (`quality:`); None: off."""

    def chosen_text(self, call: Call) -> ChosenText:
        """The words of `call` that the router classifies (`gateway.routing.human_text`); `complete`
        chooses them once per request, for the decision and the ledger row."""
        return choose(call.user_texts, self.settings.classify_skip_tags)

    async def decide(
        self,
        call: Call,
        conversation: Conversation | None = None,
        *,
        record: bool = True,
        chosen: ChosenText | None = None,
        arm: str | None = None,
    ) -> Decision:
        """The decision for `call`; within `conversation`, the policy may keep its model
        (`record=False`: without updating the conversation's state). A turn of an agent's tool
        loop (no new human words) keeps the model its conversation holds, unclassified.
        `arm`: what a canary share is drawn by when there is no conversation (the request id)."""
        chosen = chosen or self.chosen_text(call)
        if chosen.source == "previous_turn" and conversation is not None:
            held = await self._held(call.model, conversation)
            if held is not None:
                return held
        started = time.perf_counter()
        arm = conversation.id if conversation is not None else arm
        decision = await self.decider.decide(call.model, chosen.text, arm, call.cost_weight)
        if decision.reason != "direct":
            self.telemetry.classified(time.perf_counter() - started)
        if decision.cost_weight is not None and decision.scores is not None:
            self.telemetry.weighed(decision.cost_weight, decision.scores)
        if conversation is not None:
            decision = await self.conversations.settle(conversation, decision, record=record)
        return decision

    async def _held(self, name: str, conversation: Conversation) -> Decision | None:
        policy = self.decider.policy(name)
        if policy.router is None:
            return None
        pin = await self.conversations.held(conversation, name)
        if pin is None or pin.model not in self.settings.models:
            return None
        fallback = policy.router.fallback
        return Decision(
            pin.model,
            "pinned",
            name,
            threshold=policy.threshold,
            fallback=fallback,
            router=policy.router.name,
        )

    async def complete(
        self,
        provider: Provider,
        call: Call,
        conversation: Conversation | None = None,
        incoming: Mapping[str, str] | None = None,
    ) -> Answer:
        """Decide, then open the upstream until its first byte. Streams are relayed lazily by
        `Answer.frames`; the caller must consume or close them. Every answer, and every
        `GatewayError` raised, carries the request id, the conversation and the decision in
        its headers. `incoming`: the client's headers, read for its trace context only."""
        incoming = incoming or {}
        exchange = Exchange(
            provider,
            call,
            self.chosen_text(call),
            conversation=conversation.id if conversation else None,
        )
        exchange.span = self.tracing.request(provider.name, call.model, incoming)
        cap = self.settings.max_concurrency
        if self.inflight >= cap:
            raise Overloaded(
                f"The gateway has {cap} requests in flight: retry shortly",
                headers={"retry-after": "1", **exchange.headers()},
            )
        self._enter()
        handed_over = False
        try:
            opened = await self._open(provider, exchange, conversation, incoming)
            exchange.decision = opened.decision
            answer = self._answer(opened, exchange)
            handed_over = answer.frames is not None
            if not handed_over:
                self._done(exchange, opened.response.status_code)
            return answer
        except GatewayError as exc:
            exc.headers = {**exchange.headers(), **exc.headers}
            self._done(exchange, exc.status)
            raise
        finally:
            if not handed_over:
                self._leave()

    async def _open(
        self,
        provider: Provider,
        exchange: Exchange,
        conversation: Conversation | None,
        incoming: Mapping[str, str],
    ) -> Opened:
        """Decide, then open the upstream: its first byte, or the whole of a non-streamed answer.
        Bounded by the drain: at the grace's end the wait is cancelled (closing the upstream
        request) and the client is answered 503 `shutting_down` in its API's shape."""
        try:
            async with self.drain.limit():
                with self.tracing.child(exchange.span, "classify", SpanKind.INTERNAL):
                    exchange.decision = await self._decide(provider, exchange, conversation)
                exchange.classify_ms = classified = exchange.elapsed_ms()
                target = self.settings.models[exchange.decision.model].upstream_model
                name = f"{OPERATIONS[provider.name]} {target}"
                with self.tracing.child(exchange.span, name, SpanKind.CLIENT) as upstream:
                    trace_headers = self.tracing.upstream_headers(upstream, incoming)
                    opened = await self.forwarder.open(
                        provider, exchange.decision, exchange.call, trace_headers
                    )
        except TimeoutError:
            if not self.drain.past_deadline():
                raise
            raise self.drain.cut(started=False) from None
        exchange.first_byte_ms = exchange.elapsed_ms()
        self.telemetry.first_byte(
            opened.decision.model, (exchange.first_byte_ms - classified) / 1000
        )
        return opened

    def _enter(self) -> None:
        self.inflight += 1
        self._idle.clear()
        self.telemetry.inflight(self.inflight)

    def _leave(self) -> None:
        self.inflight -= 1
        if not self.inflight:
            self._idle.set()
        self.telemetry.inflight(self.inflight)

    async def idle(self) -> None:
        """Return once no request is in flight (at once when none is)."""
        await self._idle.wait()

    def _upstream_failed(self, model: str, error: UpstreamError) -> None:
        """Every failed upstream attempt, a fallback's included."""
        code = error.upstream_status if isinstance(error, UpstreamStatus) else error.code
        self.telemetry.upstream_error(model, code)

    async def _decide(
        self, provider: Provider, exchange: Exchange, conversation: Conversation | None
    ) -> Decision:
        call = exchange.call
        kind = self.decider.api_kind(call.model)  # unknown or malformed names fail here
        if kind != provider.upstream_kind:
            raise InvalidRequest(
                f"{call.model!r} is served by {kind} upstreams, which do not speak this API "
                f"(/v1/{provider.name}): call it on its own API, or use a router of "
                f"{provider.upstream_kind} models",
                param="model",
            )
        if not provider.routable and self.decider.policy(call.model).kind != "direct":
            raise InvalidRequest(
                f"/v1/{provider.name} is passed through for models named directly: "
                f"{call.model!r} is a router; name a model from GET /v1/models",
                param="model",
                code="invalid_model",
            )
        owner = await self._owner(call.previous_id) if call.previous_id else None
        if owner is not None:
            return self.decider.continuing(call.model, owner)
        return await self.decide(call, conversation, chosen=exchange.chosen, arm=exchange.id)

    async def _owner(self, answer_id: str) -> str | None:
        """The model that made an earlier answer; None when unknown (or the store is down: the
        upstream then says whether it knows the answer)."""
        try:
            owner = await self.store.get(ANSWERS, answer_id)
        except StoreUnavailable:
            return None
        return owner if isinstance(owner, str) and owner in self.settings.models else None

    def _remember(self, answer_id: str, model: str) -> None:
        """Record who made an answer, off the request's path (a failing store is counted by
        the conversations' health, and never fails a request)."""

        async def write() -> None:
            with contextlib.suppress(StoreUnavailable):
                await self.store.put(ANSWERS, answer_id, model, self.settings.conversation_ttl)

        task = asyncio.ensure_future(write())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def _answer(self, opened: Opened, exchange: Exchange) -> Answer:
        headers = {**opened.headers, **exchange.headers()}
        if not opened.streaming:
            if opened.response.status_code < 300:
                facts = opened.provider.facts(opened.content)
                exchange.answer_id, exchange.usage = facts.id, facts.usage
                exchange.answer_body = opened.content
            media = opened.response.headers.get("content-type", "application/json")
            return Answer(
                opened.decision, opened.response.status_code, headers, media, opened.content
            )

        def settle(status: int) -> None:
            self._leave()
            if opened.reader is not None:
                exchange.answer_id = opened.reader.answer_id
                exchange.usage = opened.reader.usage
            self._done(exchange, status)

        relay = Relay(self.forwarder.relay(opened), opened, settle, self.drain)
        return Answer(opened.decision, 200, headers, "text/event-stream", frames=relay)

    def _done(self, exchange: Exchange, status: int) -> None:
        """Account for one finished request: its cost, metrics, ledger row, span and log line."""
        decision = exchange.decision
        model = decision.model if decision else "-"
        reason = decision.reason if decision else "-"
        if exchange.answer_id is not None and decision is not None:
            self._remember(exchange.answer_id, decision.model)
        usage = exchange.usage
        prices = self.settings.models
        spent = cost(prices[model].price, usage) if model in prices else None
        router = self.settings.routers.get(decision.router or "") if decision else None
        baseline = router.baseline if router and router.baseline else self.settings.baseline
        would_have = cost(prices[baseline].price, usage) if baseline else None
        self.telemetry.request_done(
            model, reason, status, usage=usage, cost=spent, baseline_cost=would_have
        )
        row = exchange.row(model, reason, status, spent, would_have)
        if self.ledger is not None:
            self.ledger.record(row)
        if self.shadow is not None and decision is not None and status < 300:
            self._offer_shadow(exchange, decision)
        self.tracing.finish(exchange.span, decision, usage, status)
        log_request(
            self.settings.log_format,
            {
                "event": exchange.provider.name,
                "request_id": row.id,
                "requested": row.requested,
                "model": model,
                "reason": reason,
                "label": row.label,
                "score": row.score,
                "status": status,
                "stream": row.stream,
                **{
                    name: value
                    for name, value in (
                        ("classify_ms", row.classify_ms),
                        ("first_byte_ms", row.first_byte_ms),
                    )
                    if value is not None
                },
                "total_ms": row.total_ms,
            },
        )

    def _offer_shadow(self, exchange: Exchange, decision: Decision) -> None:
        """Hand a settled answer to the shadow judge, with its router's strong/weak pair."""
        assert self.shadow is not None
        router = self.decider.policy(exchange.call.model).router
        pair = (router.strong, router.weak) if router and router.strong and router.weak else None
        self.shadow.consider(
            exchange.id,
            provider=exchange.provider,
            call=exchange.call,
            decision=decision,
            pair=pair,
            answer=exchange.answer_body,
        )
