"""HTTP handlers: parse into typed values, call the domain, serialise. No decisions here."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable
from typing import Any, TypeVar

from litestar import Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from litestar.response import Stream

from gateway.errors import ClientDisconnected, Unauthorized
from gateway.routing import ROUTER
from gateway.schema import parse_chat_request
from gateway.service import Gateway
from gateway.shutdown import Drain

T = TypeVar("T")


def require_key(connection: ASGIConnection[Any, Any, Any, Any], __: BaseRouteHandler) -> None:
    """Guard for `/v1/*`: the client's Bearer key must be one of `ROUTELLM_API_KEYS`."""
    gateway: Gateway = connection.app.state.gateway
    keys = gateway.settings.api_keys
    if not keys:
        return
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    given = token.strip().encode()
    # Compare with every key, always, so timing tells nothing about which prefix matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    if scheme.lower() != "bearer" or not matched:
        raise Unauthorized(
            "Incorrect or missing API key: send 'Authorization: Bearer <key>' with a key from "
            "the gateway's ROUTELLM_API_KEYS"
        )


async def until_disconnect(request: Request[Any, Any, Any], work: Awaitable[T]) -> T:
    """Run `work` unless the client disconnects first; then cancel it (closing any upstream
    request it opened) and raise `ClientDisconnected`. Litestar only watches for disconnects
    once a streaming response exists; before that, this is the watcher."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        watcher.cancel()
    if not task.done() or task.cancelled():
        await asyncio.gather(task, return_exceptions=True)
        raise ClientDisconnected
    return task.result()


async def _disconnected(request: Request[Any, Any, Any]) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


@post("/v1/chat/completions", guards=[require_key], status_code=200)
async def chat_completions(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    gateway: Gateway = state.gateway
    chat = parse_chat_request(await request.body(), max_messages=gateway.settings.max_messages)
    answer = await until_disconnect(request, gateway.complete(chat))
    if answer.frames is None:
        return Response(
            answer.content,
            status_code=answer.status,
            media_type=answer.media_type,
            headers=answer.headers,
        )
    return Stream(
        state.drain.guard(answer.frames),  # cut with an error event after the shutdown grace
        media_type="text/event-stream",
        headers={**answer.headers, "cache-control": "no-cache", "x-accel-buffering": "no"},
        # Closes the upstream request however the stream ended, even if it never started.
        background=BackgroundTask(answer.frames.aclose),
    )


@post("/v1/route", guards=[require_key], status_code=200)
async def route(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    gateway: Gateway = state.gateway
    chat = parse_chat_request(await request.body(), max_messages=gateway.settings.max_messages)
    decision = await until_disconnect(request, gateway.decide(chat))
    return decision.as_json()


@get("/v1/models", guards=[require_key])
async def models(state: State) -> dict[str, Any]:
    gateway: Gateway = state.gateway
    names = [ROUTER, *gateway.settings.models]
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "routellm-gateway"}
            for name in names
        ],
    }


@get("/health")
async def health(state: State) -> Response[dict[str, Any]]:
    gateway: Gateway = state.gateway
    drain: Drain = state.drain
    status, code = ("draining", 503) if drain.draining else ("ok", 200)
    body = {"status": status, "classifier": await gateway.classifier.health()}
    return Response(body, status_code=code)


@get("/metrics", media_type="text/plain; version=0.0.4")
async def metrics(state: State) -> str:
    gateway: Gateway = state.gateway
    report = await gateway.classifier.health()
    counters = {
        f"routellm_classifier_{key}": float(value)
        for key, value in report.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    return gateway.metrics.render(counters)


HANDLERS = [chat_completions, route, models, health, metrics]
