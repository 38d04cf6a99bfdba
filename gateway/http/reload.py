"""Reloading the config without a restart: `POST /v1/admin/reload` (admin key) or SIGHUP.

    reloader = Reloader(load)          # load: re-reads the config file and the environment
    version = await reloader.reload(app)

The new config is read and validated, the checkpoints it names are loaded and warmed (those
already loaded are reused), and only then is the app's `Gateway` swapped for one built on it.
A request in flight keeps the `Gateway` it started on, so it finishes on the old config; the
classifiers nothing uses any more are closed once the old `Gateway` has no request in flight.
A bad config raises `ReloadRefused` (422, the reason in the OpenAI error shape and in the log)
and the old config keeps serving. What lives for the process (the ledger, Redis, shadow
judging, tracing, logging, the drain's grace, the metrics, and the gateway's own classifier from
`ROUTELLM_BERT_*`) changes only with a restart: a reload that changes them is refused and says
so; a router's own checkpoint (`routers.<name>.classifier`) changes with a reload. `/health`
and `/v1/models` show the active `config_version`, which goes up by one with every successful
reload.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from litestar import Request, post

from classifier.base import Classifier, ClassifierError
from classifier.settings import SettingsError
from gateway.errors import ReloadRefused
from gateway.flow import Gateway
from gateway.http.admin import require_admin
from gateway.routing.checkpoints import close_own, forget, open_own
from gateway.settings.load import Settings

__all__ = ["RELOAD_HANDLERS", "Reloader", "on_sighup"]

log = logging.getLogger("routellm.gateway")

RESTART_ONLY = (
    "classifier",
    "ledger",
    "redis_url",
    "redis_timeout",
    "quality",
    "tracing",
    "log_format",
    "shutdown_grace",
)
"""Settings held by what lives for the whole process."""


class Reloader:
    def __init__(
        self, load: Callable[[], Settings], loaded: dict[tuple[str, str], Classifier]
    ) -> None:
        self.load = load
        self.loaded = loaded
        """Every checkpoint loaded, by checkpoint and dtype (`open_own`)."""
        self.version = 1
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    async def reload(self, app: Any) -> int:
        """Swap in the re-read config; `ReloadRefused` leaves the old one serving."""
        async with self._lock:
            old: Gateway = app.state.gateway
            try:
                settings = await asyncio.to_thread(self.load)
            except SettingsError as exc:
                raise self._refuse(str(exc)) from None
            changed = [f for f in RESTART_ONLY if getattr(settings, f) != getattr(old.settings, f)]
            if changed:
                raise self._refuse(
                    f"{', '.join(changed)} change only with a restart: restart the gateway, or "
                    "keep them as they are"
                )
            try:
                new = await self._build(old, settings)
            except ClassifierError as exc:
                raise self._refuse(f"a checkpoint does not load: {exc}") from None
            app.state.gateway, app.state.settings = new, settings
            new.telemetry.follow(settings)
            self.version += 1
            log.info("config reloaded: version %d", self.version)
            self._retire(old, new)
            return self.version

    def _refuse(self, reason: str) -> ReloadRefused:
        log.warning("reload refused, the old config keeps serving: %s", reason)
        return ReloadRefused(f"Reload refused, the old config keeps serving: {reason}")

    async def _build(self, old: Gateway, settings: Settings) -> Gateway:
        own = await open_own(settings, old.classifier, self.loaded)
        return Gateway(
            settings,
            old.classifier,
            old.client,
            telemetry=old.telemetry,
            ledger=old.ledger,
            store=old.store,
            drain=old.drain,
            tracing=old.tracing,
            shadow=old.shadow,
            own_classifiers=own,
        )

    def _retire(self, old: Gateway, new: Gateway) -> None:
        """Close the checkpoints `old` used and `new` does not, once `old` is idle."""
        kept = [new.classifier, *new.decider.own.values()]
        unused: list[Classifier] = []
        for c in old.decider.own.values():
            if not any(c is k for k in kept) and not any(c is u for u in unused):
                unused.append(c)
        if not unused:
            return
        forget(self.loaded, unused)

        async def retire() -> None:
            await old.idle()
            for classifier in unused:
                await classifier.aclose()

        task = asyncio.ensure_future(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def aclose(self, app: Any) -> None:
        """At shutdown: the retired checkpoints (nothing is in flight any more), then the
        current `Gateway`'s own ones."""
        await asyncio.gather(*self._retiring, return_exceptions=True)
        gateway: Gateway = app.state.gateway
        await close_own(gateway.decider.own, gateway.classifier)


def on_sighup(app: Any, reloader: Reloader) -> None:
    """SIGHUP reloads, where this process's loop can take signals (its main thread; a server
    run on another thread, as the tests do, reloads through the route only)."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[int]] = set()

    def reload() -> None:
        async def run() -> int:
            try:
                return await reloader.reload(app)
            except ReloadRefused:
                return reloader.version  # refused: logged, the old config serves on

        task = asyncio.ensure_future(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread's loop can take signals
    if not hasattr(signal, "SIGHUP"):
        return  # Windows has no SIGHUP: reload through the route
    loop.add_signal_handler(signal.SIGHUP, reload)


@post("/v1/admin/reload", guards=[require_admin], status_code=200)
async def reload_config(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Reload the config file and the variables (admin key): validated, loaded and warmed
    before the swap; requests in flight finish on the old config. A bad config answers 422
    `reload_refused` with the reason, and the old one keeps serving."""
    reloader: Reloader = request.app.state.reloader
    version = await reloader.reload(request.app)
    return {"status": "reloaded", "config_version": version}


RELOAD_HANDLERS = [reload_config]
