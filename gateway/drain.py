"""Graceful shutdown: on SIGTERM the gateway drains before uvicorn shuts it down.

    drain = app.state.drain                      # built by create_app from ROUTELLM_SHUTDOWN_GRACE
    async with drain.limit(): await next_frame   # the flow's waits: cut after the grace
    DrainingServer(uvicorn.Config(app, ...), drain).run()   # what `routellm-gateway` runs

While draining (from the first SIGTERM or SIGINT):
- the listener stays open: `/health` answers 503 `draining`, so a load balancer stops sending
  traffic, and new `/v1/*` POSTs answer 503 in the OpenAI shape (`refuse_when_draining`);
- requests and streams in flight may finish within `grace` seconds;
- at the deadline, each stream still running gets its API's error event (for Chat Completions
  `data: {"error": ...}`, no `[DONE]`) and its upstream request is closed; a request still
  waiting for its upstream's first byte (or a non-streamed answer) gets 503 `shutting_down` in
  its API's shape, with its request id and ledger row; a second signal brings the deadline
  forward to now;
- once nothing is in flight, the listener closes, connections already accepted get
  `LINGER_SECONDS` to send their request (answered 503 like any other), then uvicorn's own
  shutdown runs and the process exits 0.

uvicorn alone closes its listener at once, waits without bound (or cancels silently after
`timeout_graceful_shutdown`) and re-raises the signal, so the process exits 143. Under a plain
`uvicorn gateway.app:create_app --factory` nothing here starts: that is uvicorn's behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import FrameType
from typing import Any

import uvicorn
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.errors import ShuttingDown
from gateway.ledger.writer import new_request_id

log = logging.getLogger("routellm.gateway")

LINGER_SECONDS = 0.5
"""Once nothing is in flight, the listener closes (new connections are refused, which balancers
retry elsewhere), and connections already accepted get this long to send their request: each is
answered 503 `shutting_down` instead of being closed unanswered."""
FLUSH_SECONDS = 2.0
"""After the deadline, how long uvicorn waits for cut streams to send their error event and
close their upstream before it cancels what is left."""


class Drain:
    """The drain's state, shared by the app (health, refusal, stream guard) and the server."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.deadline: float | None = None
        """Loop time at which remaining streams are cut; None until the drain begins."""
        self._waiting: set[asyncio.Timeout] = set()

    @property
    def draining(self) -> bool:
        return self.deadline is not None

    def begin(self, *, now: bool = False) -> None:
        """Start draining (from the event loop); `now=True` cuts remaining streams at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() if now else loop.time() + self.grace
        self.deadline = deadline if self.deadline is None else min(self.deadline, deadline)
        for timeout in self._waiting:
            timeout.reschedule(self.deadline)

    def past_deadline(self) -> bool:
        return self.deadline is not None and asyncio.get_running_loop().time() >= self.deadline

    @contextlib.asynccontextmanager
    async def limit(self) -> AsyncIterator[None]:
        """Bound one wait by the drain's deadline: `TimeoutError` once the grace has passed.
        A timeout with no deadline costs no timer; `begin` reschedules the waiting ones."""
        async with asyncio.timeout_at(self.deadline) as timeout:
            self._waiting.add(timeout)
            try:
                yield
            finally:
                self._waiting.discard(timeout)

    def cut(self, *, started: bool = True) -> ShuttingDown:
        """The error a request still running after the grace ends with: a stream's last event,
        or (`started=False`) the answer to one still waiting for its upstream's first byte."""
        what = "stream" if started else "request"
        log.warning("%s cut: the shutdown grace of %gs has passed", what, self.grace)
        return ShuttingDown(
            f"The gateway is shutting down: the {what} was cut after the {self.grace:g}s grace "
            "(ROUTELLM_SHUTDOWN_GRACE); retry the request"
        )


def refuse_when_draining(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """App-wide guard: while draining, a new `/v1/*` POST answers 503 `shutting_down`."""
    drain: Drain = connection.app.state.drain
    if (
        drain.draining
        and connection.scope.get("method") == "POST"
        and connection.scope["path"].startswith("/v1/")
    ):
        raise ShuttingDown(
            "The gateway is shutting down and takes no new requests: retry on another replica",
            headers={"retry-after": "1", "x-routellm-request-id": new_request_id()},
        )


class DrainingServer(uvicorn.Server):
    """uvicorn's server with the drain in front of its shutdown, exiting 0 after a signal.

    A signal starts the drain instead of uvicorn's shutdown; `on_tick` (every 0.1 s, on the event
    loop, so never inside a signal handler) ends the main loop once no request is in flight."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain
        self.signals = 0
        self._closed_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in uvicorn's captured signals: those are re-raised after shutdown (143).
        self.signals += 1
        # Before the listeners exist nothing is served: nothing to drain. Once they do (uvicorn
        # says it is running a moment before it sets `started`), a signal drains.
        if not self.started and not self.servers:
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.signals and not self.drain.draining:
            log.info("draining: in-flight requests have %gs to finish", self.drain.grace)
            self.drain.begin()
        if self.signals > 1 and not self.drain.past_deadline():
            log.info("second signal: cutting the remaining streams now")
            self.drain.begin(now=True)
        if self.drain.draining and (not self.server_state.tasks or self.drain.past_deadline()):
            now = asyncio.get_running_loop().time()
            if self._closed_at is None:
                for server in self.servers:
                    server.close()  # stop accepting; uvicorn's shutdown closes them again
                self._closed_at = now
            elif now - self._closed_at >= LINGER_SECONDS:
                self.should_exit = True
        return await super().on_tick(counter)


def serve(app: Any, drain: Drain, **config: Any) -> bool:
    """Run `app` under uvicorn (`config`: `uvicorn.Config`'s arguments) with the drain until a
    signal has drained it. Returns False when the server failed to start."""
    config = {"timeout_graceful_shutdown": FLUSH_SECONDS, **config}
    server = DrainingServer(uvicorn.Config(app, **config), drain)
    server.run()
    return server.started
