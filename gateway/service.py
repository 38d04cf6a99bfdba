"""The gateway's domain: decide, forward, count. No HTTP framework here: handlers call in."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import httpx

from classifier.base import Classifier
from gateway.errors import GatewayError, Overloaded
from gateway.logs import log_request
from gateway.metrics import Metrics
from gateway.routing import Decision, Router
from gateway.schema import ChatRequest
from gateway.settings import Settings
from gateway.upstream import Opened, Proxy


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
        response: httpx.Response,
        settle: Callable[[int], None],
    ) -> None:
        self._frames = frames
        self._response = response
        self._settle: Callable[[int], None] | None = settle
        self.status = 200

    def __aiter__(self) -> Relay:
        return self

    async def __anext__(self) -> bytes:
        try:
            out = await anext(self._frames)
        except BaseException:
            await self.aclose()
            raise
        if out.startswith(b'data: {"error"'):
            self.status = 502
        return out

    async def aclose(self) -> None:
        settle, self._settle = self._settle, None
        if settle is None:
            return
        try:
            await self._frames.aclose()
            await self._response.aclose()
        finally:
            settle(self.status)


class Gateway:
    """Everything a request needs, built once per app: settings, router, proxy, metrics."""

    def __init__(
        self, settings: Settings, classifier: Classifier, client: httpx.AsyncClient
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        self.router = Router(settings, classifier)
        self.proxy = Proxy(settings, client)
        self.metrics = Metrics()

    async def decide(self, chat: ChatRequest) -> Decision:
        started = time.perf_counter()
        decision = await self.router.decide(chat.model, chat.messages)
        if decision.reason != "direct":
            self.metrics.classify_seconds += time.perf_counter() - started
            self.metrics.classify_count += 1
        return decision

    async def complete(self, chat: ChatRequest) -> Answer:
        """Decide, then open the upstream until its first byte. Streams are relayed lazily by
        `Answer.frames`; the caller must consume or close them."""
        cap = self.settings.max_concurrency
        if self.metrics.inflight >= cap:
            raise Overloaded(
                f"The gateway has {cap} requests in flight: retry shortly",
                headers={"retry-after": "1"},
            )
        self.metrics.inflight += 1
        started = time.perf_counter()
        handed_over = False
        decision: Decision | None = None
        try:
            decision = await self.decide(chat)
            classified = time.perf_counter()
            opened = await self.proxy.open(decision, chat.body, chat.stream)
            if opened.decision.reason == "upstream_fallback":
                self.metrics.upstream_errors[(decision.model, "fallback")] += 1
            decision = opened.decision
            timings = {"classify_ms": (classified - started) * 1000}
            timings["first_byte_ms"] = (time.perf_counter() - started) * 1000
            answer = self._answer(opened, chat, timings, started)
            handed_over = answer.frames is not None
            if not handed_over:
                self._done(chat, decision, opened.response.status_code, timings, started)
            return answer
        except GatewayError as exc:
            if decision is not None:
                self.metrics.upstream_errors[(decision.model, str(exc.code))] += 1
                exc.headers = {**decision.headers(), **exc.headers}
            self._done(chat, decision, exc.status, {}, started)
            raise
        finally:
            if not handed_over:
                self.metrics.inflight -= 1

    def _answer(
        self, opened: Opened, chat: ChatRequest, timings: dict[str, float], started: float
    ) -> Answer:
        headers = {**opened.headers, **opened.decision.headers()}
        if not opened.streaming:
            media = opened.response.headers.get("content-type", "application/json")
            return Answer(
                opened.decision, opened.response.status_code, headers, media, opened.content
            )
        return Answer(
            opened.decision,
            200,
            headers,
            "text/event-stream",
            frames=self._relay(opened, chat, timings, started),
        )

    def _relay(
        self, opened: Opened, chat: ChatRequest, timings: dict[str, float], started: float
    ) -> Relay:
        def settle(status: int) -> None:
            self.metrics.inflight -= 1
            self._done(chat, opened.decision, status, timings, started)

        return Relay(self.proxy.relay(opened), opened.response, settle)

    def _done(
        self,
        chat: ChatRequest,
        decision: Decision | None,
        status: int,
        timings: dict[str, float],
        started: float,
    ) -> None:
        model = decision.model if decision else "-"
        reason = decision.reason if decision else "-"
        self.metrics.requests[(model, reason, status)] += 1
        log_request(
            self.settings.log_format,
            {
                "event": "chat",
                "requested": chat.model,
                "model": model,
                "reason": reason,
                "label": decision.label if decision else None,
                "score": decision.score if decision else None,
                "status": status,
                "stream": chat.stream,
                **timings,
                "total_ms": (time.perf_counter() - started) * 1000,
            },
        )
