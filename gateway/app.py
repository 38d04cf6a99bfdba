"""`create_app`: the gateway as a Litestar application.

    app = create_app(settings)                        # production: settings from load_settings
    app = create_app(settings, classifier=fake, transport=httpx.MockTransport(handler))  # tests

The shared `httpx.AsyncClient` and the classifier open in the lifespan and close there; nothing
heavy happens at import or in `create_app`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport
from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from opentelemetry.sdk.trace import TracerProvider

from classifier import Classifier, open_classifier
from gateway.drain import Drain, refuse_when_draining
from gateway.errors import ClientDisconnected, GatewayError, error_body
from gateway.flow import Gateway
from gateway.http.admin import ADMIN_HANDLERS
from gateway.http.feedback import FEEDBACK_HANDLERS
from gateway.http.handlers import HANDLERS, provider_for
from gateway.http.reload import RELOAD_HANDLERS, Reloader, on_sighup
from gateway.ledger.writer import Ledger
from gateway.observe.metrics import Telemetry
from gateway.observe.tracing import Tracing
from gateway.observe.tracing import tracer_provider as make_tracer_provider
from gateway.quality.shadow import Shadow
from gateway.routing.checkpoints import open_own
from gateway.routing.state import open_store
from gateway.settings.load import Settings, from_environment

log = logging.getLogger("routellm.gateway")

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def create_app(
    settings: Settings | None = None,
    *,
    classifier: Classifier | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    tracer_provider: TracerProvider | None = None,
    reload: Callable[[], Settings] | None = None,
) -> Litestar:
    """Build the gateway. `classifier`, `transport` and `tracer_provider` replace the real ones
    (tests, embedding); without a tracer provider, `settings.tracing` says whether to trace."""
    settings = settings or from_environment()
    drain = Drain(settings.shutdown_grace)
    load = reload or from_environment

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.upstream_timeout, connect=settings.connect_timeout)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        client = httpx.AsyncClient(
            transport=transport or AiohttpTransport(limits=limits, trust_env=False),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
        )
        spans = tracer_provider or make_tracer_provider(settings.tracing)
        owned = classifier is None
        clf = classifier or await open_classifier(settings.classifier)
        loaded: dict[tuple[str, str], Classifier] = {}
        own = await open_own(settings, clf, loaded)
        ledger = Ledger.open(settings) if settings.ledger.enabled else None
        telemetry = Telemetry(settings, ledger)
        store = open_store(settings.redis_url, settings.redis_timeout)
        shadow = None
        if settings.quality.enabled and ledger is not None:
            shadow = Shadow(settings, client, ledger)
            await shadow.start()
        app.state.gateway = Gateway(
            settings,
            clf,
            client,
            telemetry=telemetry,
            ledger=ledger,
            store=store,
            drain=drain,
            tracing=Tracing(spans),
            shadow=shadow,
            own_classifiers=own,
        )
        app.state.settings = settings
        app.state.ledger = ledger
        app.state.reloader = reloader = Reloader(load, loaded)
        on_sighup(app, reloader)
        try:
            yield
        finally:
            if shadow is not None:
                await shadow.aclose()  # before the client and the ledger it uses close
            await client.aclose()
            await store.aclose()
            await reloader.aclose(app)
            if owned:
                await clf.aclose()
            if ledger is not None:
                await ledger.aclose()  # flushes the rows still queued
            if spans is not None and tracer_provider is None:
                spans.shutdown()  # exports the spans still batched

    return Litestar(
        route_handlers=[*HANDLERS, *ADMIN_HANDLERS, *FEEDBACK_HANDLERS, *RELOAD_HANDLERS],
        lifespan=[lifespan],
        # The drain begins on SIGTERM under `routellm-gateway` (gateway.drain.serve).
        state=State({"drain": drain}),
        guards=[refuse_when_draining],
        exception_handlers={
            GatewayError: gateway_error,
            HTTPException: http_error,
            ClientDisconnected: client_gone,
            Exception: internal_error,
        },
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        logging_config=None,
    )


def gateway_error(request: Request[Any, Any, Any], exc: GatewayError) -> Response[Any]:
    body = provider_for(request.url.path).error_body(exc)
    return Response(body, status_code=exc.status, headers=exc.headers)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    message = exc.detail or "HTTP error"
    if status == 413:
        message = "The request body is larger than the gateway accepts (ROUTELLM_MAX_BODY_BYTES)"
    elif status == 404:
        message = "Unknown route: the gateway serves /v1/chat/completions, /v1/models, /v1/route"
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(status)
    body = error_body(message, ERROR_TYPES.get(status, "server_error"), code=code)
    return Response(body, status_code=status, headers=exc.headers or None)


def client_gone(_: Request[Any, Any, Any], __: ClientDisconnected) -> Response[Any]:
    return Response(b"", status_code=499)


def internal_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("internal error: %s", type(exc).__name__, exc_info=exc)
    return Response(
        error_body("The gateway failed to handle this request", "server_error"), status_code=500
    )
