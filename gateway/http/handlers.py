"""HTTP handlers: parse into typed values, call the domain, serialise. No decisions here."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any, TypeVar

from litestar import Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from litestar.response import Stream

from gateway.apis import (
    COMPLETIONS,
    EMBEDDINGS,
    AnthropicMessages,
    ChatCompletions,
    Provider,
    Responses,
)
from gateway.drain import Drain
from gateway.errors import ClientDisconnected, Unauthorized
from gateway.flow import Gateway
from gateway.observe.metrics import CONTENT_TYPE
from gateway.routing.call import Call
from gateway.routing.conversations import HEADER as CONVERSATION_HEADER
from gateway.routing.conversations import Conversation, client_key, identify
from gateway.routing.decider import read_cost_weight
from routers.mf import MFRouter

T = TypeVar("T")


def require_key(connection: ASGIConnection[Any, Any, Any, Any], __: BaseRouteHandler) -> None:
    """Guard for `/v1/*`: the client's Bearer key must be one of `ROUTELLM_API_KEYS`."""
    gateway: Gateway = connection.app.state.gateway
    keys = gateway.settings.api_keys
    if not keys:
        return
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given = token.strip().encode()
    else:  # Anthropic's clients send their key as x-api-key
        given = connection.headers.get("x-api-key", "").strip().encode()
    # Compare with every key, always, so timing tells nothing about which prefix matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    if not given or not matched:
        raise Unauthorized(
            "Incorrect or missing API key: send 'Authorization: Bearer <key>' (or 'x-api-key') "
            "with a key from the gateway's ROUTELLM_API_KEYS"
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


CHAT = ChatCompletions()
API_BY_PATH: dict[str, Provider] = {
    "/v1/chat/completions": CHAT,
    "/v1/route": CHAT,
    "/v1/responses": Responses(),
    "/v1/messages": AnthropicMessages(),
    "/v1/completions": COMPLETIONS,
    "/v1/embeddings": EMBEDDINGS,
}
"""Which API a path speaks: its requests are parsed, and its errors rendered, by that provider."""


def provider_for(path: str) -> Provider:
    return API_BY_PATH.get(path, CHAT)


def conversation_of(request: Request[Any, Any, Any], call: Call) -> Conversation:
    """The request's conversation: its `x-routellm-conversation` header, else derived."""
    return identify(request.headers.get(CONVERSATION_HEADER), client_key(request.headers), call)


@post([path for path in API_BY_PATH if path != "/v1/route"], guards=[require_key], status_code=200)
async def api_call(request: Request[Any, Any, Any]) -> Response[Any]:
    """The handler of every API: parse, run the flow, serialise JSON or a stream."""
    gateway: Gateway = request.app.state.gateway
    provider = API_BY_PATH[request.url.path]
    call = provider.parse(
        await request.body(), request.headers, max_messages=gateway.settings.max_messages
    )
    call = replace(call, cost_weight=read_cost_weight(request.headers))
    if request.url.query:
        call = replace(call, query=request.url.query)
    conversation = conversation_of(request, call)
    work = gateway.complete(provider, call, conversation, request.headers)
    answer = await until_disconnect(request, work)
    if answer.frames is None:
        return Response(
            answer.content,
            status_code=answer.status,
            media_type=answer.media_type,
            headers=answer.headers,
        )
    return Stream(
        answer.frames,
        media_type="text/event-stream",
        headers={**answer.headers, "cache-control": "no-cache", "x-accel-buffering": "no"},
        # Closes the upstream request however the stream ended, even if it never started.
        background=BackgroundTask(answer.frames.aclose),
    )


@post("/v1/route", guards=[require_key], status_code=200)
async def route(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    """The decision for a Chat Completions body, without calling any upstream: the model, the
    reason, the label and all three scores, the conversation, and what was classified."""
    gateway: Gateway = state.gateway
    call = CHAT.parse(
        await request.body(), request.headers, max_messages=gateway.settings.max_messages
    )
    call = replace(call, cost_weight=read_cost_weight(request.headers))
    conversation = conversation_of(request, call)
    decision = await until_disconnect(request, gateway.decide(call, conversation, record=False))
    chosen = gateway.chosen_text(call)
    return {
        **decision.as_json(),
        "conversation": conversation.id,
        "classified_chars": len(chosen.text),
        "classified_from": chosen.source,
    }


@get("/v1/models", guards=[require_key])
async def models(state: State) -> dict[str, Any]:
    """The names a client may ask for: `router`, the named routers and every served model, with
    the config's `config_version`."""
    gateway: Gateway = state.gateway
    names = [*gateway.settings.routers, *gateway.settings.models]
    return {
        "object": "list",
        "config_version": state.reloader.version,
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "routellm-gateway"}
            for name in names
        ],
    }


@get("/health")
async def health(state: State) -> Response[dict[str, Any]]:
    """200 once the classifier is loaded and warmed up, with its state (model, dtype, runtime,
    CPU features), the open breakers, the routers' checkpoints, RouteLLM's MF routers (their
    scoring pair, embeddings breaker and the 64 models they score) and the config version; 503
    `draining` after SIGTERM."""
    gateway: Gateway = state.gateway
    drain: Drain = state.drain
    status, code = ("draining", 503) if drain.draining else ("ok", 200)
    body = {
        "status": status,
        "config_version": state.reloader.version,
        "classifier": await gateway.classifier.health(),
        "router_checkpoints": {name: c.name for name, c in gateway.decider.own.items()},
        "mf_routers": {
            name: await c.health()
            for name, c in gateway.decider.own.items()
            if isinstance(c, MFRouter)
        },
        "breakers": gateway.forwarder.breakers.open(time.monotonic()),
        "conversations": gateway.conversations.health(),
    }
    return Response(body, status_code=code)


@get("/metrics", media_type=CONTENT_TYPE)
async def metrics(state: State) -> bytes:
    """The Prometheus text exposition of this process's metrics."""
    gateway: Gateway = state.gateway
    return gateway.telemetry.render(
        classifier=await gateway.classifier.health(),
        breakers=gateway.forwarder.breakers.open(time.monotonic()),
        conversation_failures=gateway.conversations.failures,
    )


HANDLERS = [api_call, route, models, health, metrics]
