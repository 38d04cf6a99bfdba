"""Admin routes over the decision ledger, and the dashboard's static files.

    GET /v1/decisions?limit=N&since=T[&format=jsonl]   newest rows first, with their feedback
                                                       and shadow verdict
    GET /v1/savings?since=T                            spend against the baseline
    GET /v1/dashboard?since=T[&buckets=N]              everything /ui draws
    GET /v1/whatif?threshold=t[&since=T]               the win-rate rule re-run at t
    GET /v1/routers/compare?incumbent=A&candidate=B    two routers side by side (canary arms,
                                                       shadow disagreements, judged quality)
    GET /ui                                            the dashboard (static, works offline)

The data routes need a key from `ROUTELLM_ADMIN_KEYS`; when client keys are set and no admin
key is, they answer 403, and when neither is set they are open. The page itself loads without
a key and asks for one. With `ROUTELLM_LEDGER=off` the data routes answer 404 `ledger_disabled`.
"""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from litestar import Request, Response, get
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler
from sqlalchemy.exc import SQLAlchemyError

from gateway.errors import (
    AdminForbidden,
    InvalidRequest,
    LedgerDisabled,
    LedgerUnavailable,
    Unauthorized,
)
from gateway.ledger import reports
from gateway.ledger.compare import compare
from gateway.ledger.writer import Ledger
from gateway.quality.shadow import Shadow
from gateway.settings.load import Settings
from gateway.settings.routing import MF_ROUTER, ROUTER

__all__ = ["ADMIN_HANDLERS", "UI_DIR"]

UI_DIR = Path(__file__).parent / "ui"
MAX_LIMIT = 10_000
T = TypeVar("T")


def require_admin(connection: ASGIConnection[Any, Any, Any, Any], __: BaseRouteHandler) -> None:
    """Guard for the ledger's data: a Bearer key from `ROUTELLM_ADMIN_KEYS`."""
    settings: Settings = connection.app.state.settings
    if not settings.admin_keys:
        if settings.api_keys:
            raise AdminForbidden(
                "The ledger's data needs an admin key: set ROUTELLM_ADMIN_KEYS on the gateway "
                "(client keys from ROUTELLM_API_KEYS are not enough)"
            )
        return
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    given = token.strip().encode()
    matched = False
    for key in settings.admin_keys:  # compare with every key: timing tells nothing
        matched |= hmac.compare_digest(given, key.encode())
    if scheme.lower() != "bearer" or not matched:
        raise Unauthorized(
            "Incorrect or missing admin key: send 'Authorization: Bearer <key>' with a key from "
            "the gateway's ROUTELLM_ADMIN_KEYS"
        )


def _ledger(request: Request[Any, Any, Any]) -> Ledger:
    ledger: Ledger | None = request.app.state.ledger
    if ledger is None:
        raise LedgerDisabled(
            "The decision ledger is off (ROUTELLM_LEDGER=off): unset it, or give a SQLite path "
            "or a postgresql:// URL, to record decisions"
        )
    return ledger


async def _read(work: Callable[[], Awaitable[T]]) -> T:
    try:
        return await work()
    except (SQLAlchemyError, OSError) as exc:
        raise LedgerUnavailable(
            f"The decision ledger cannot be read ({type(exc).__name__}); requests are still "
            "served and their rows are buffered"
        ) from exc


def _since(request: Request[Any, Any, Any]) -> float | None:
    try:
        return reports.parse_since(request.query_params.get("since"))
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="since") from None


def _number(
    request: Request[Any, Any, Any], name: str, default: float, low: float, high: float
) -> float:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise InvalidRequest(
            f"{name}={raw!r} must be a number from {low:g} to {high:g}", param=name
        )
    return value


@get("/v1/decisions", guards=[require_admin])
async def list_decisions(request: Request[Any, Any, Any]) -> Response[Any]:
    """The ledger's rows, newest first (admin key): `limit` (1 to 10,000, default 100),
    `since` (unix seconds, ISO-8601 with a zone, or `30m`/`24h`/`7d`), `format=jsonl` for one
    row a line. Each row carries its `feedback` and shadow `verdict`."""
    ledger = _ledger(request)
    limit = _number(request, "limit", 100, 1, MAX_LIMIT)
    if limit != int(limit):
        raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}", param="limit")
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "jsonl"):
        raise InvalidRequest(f"format={fmt!r} is not supported: use json or jsonl", param="format")
    since = _since(request)
    rows = await _read(lambda: reports.export(ledger, int(limit), since))
    if fmt == "jsonl":
        lines = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
        return Response(lines, media_type="application/x-ndjson")
    return Response({"object": "list", "data": rows})


@get("/v1/savings", guards=[require_admin])
async def savings(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """What routing cost against the baseline model since `since` (admin key): cost, baseline
    cost, saving, unpriced requests, model switches and the prompt cache they lost."""
    ledger = _ledger(request)
    since = _since(request)
    return await _read(lambda: reports.savings(ledger, since))


@get("/v1/dashboard", guards=[require_admin])
async def dashboard(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The figures behind `/ui` (admin key): traffic and cost over time in `buckets` (1 to
    500, default 24) since `since`, per-model feedback, and the `quality` panels."""
    ledger = _ledger(request)
    since = _since(request)
    buckets = int(_number(request, "buckets", 24, 1, 500))
    data = await _read(lambda: reports.dashboard(ledger, since, buckets))
    settings: Settings = request.app.state.settings
    data["candidates"] = [
        {"router": spec.name, "candidate": spec.candidate.router, "mode": spec.candidate.mode}
        for spec in settings.routers.values()
        if spec.candidate is not None
    ]
    shadow: Shadow | None = request.app.state.gateway.shadow
    if shadow is not None:  # this process's own counters, beside the ledger's fleet-wide ones
        data["quality"]["shadow"]["process"] = {
            **asdict(shadow.stats),
            "waiting": shadow.waiting,
            "spent_today_usd": shadow.spent_today(),
        }
    return data


@get("/v1/whatif", guards=[require_admin])
async def what_if(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The cost and strong share had the win-rate rule used `threshold` (required, 0 to 1)
    since `since` (admin key): the requests it decided are re-decided, the others keep their
    recorded cost. Only `router`'s decisions are re-decided, as routers score on scales of
    their own: `router`, the gateway's own (the default), `router-mf`, or a name under
    `routers:`."""
    ledger = _ledger(request)
    if request.query_params.get("threshold") is None:
        raise InvalidRequest("threshold is required, e.g. threshold=0.4", param="threshold")
    threshold = _number(request, "threshold", 0.5, 0, 1)
    since = _since(request)
    router = _router(request)
    return await _read(lambda: reports.what_if(ledger, threshold, since, router))


def _router(request: Request[Any, Any, Any]) -> str:
    name = request.query_params.get("router") or ROUTER
    settings: Settings = request.app.state.settings
    known = [*settings.routers, MF_ROUTER]
    if name not in known:
        raise InvalidRequest(
            f"router={name!r} is not a router of this gateway: use one of {', '.join(known)}",
            param="router",
        )
    return name


@get("/v1/routers/compare", guards=[require_admin])
async def compare_routers(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The `incumbent` router against its `candidate` since `since` (admin key): requests,
    strong share, cost, judged quality kept with 95 % intervals and latency per arm, shadow
    disagreements, and a plain verdict."""
    ledger = _ledger(request)
    settings: Settings = request.app.state.settings
    names: list[str] = []
    for param in ("incumbent", "candidate"):
        name = str(request.query_params.get(param))
        if name not in settings.routers:
            known = ", ".join(sorted(settings.routers))
            raise InvalidRequest(f"{param} must name a router: one of {known}", param=param)
        names.append(name)
    since = _since(request)
    return await _read(lambda: compare(ledger, settings, names[0], names[1], since))


ui = create_static_files_router(
    path="/ui", directories=[UI_DIR], html_mode=True, name="ui", include_in_schema=False
)

ADMIN_HANDLERS: list[ControllerRouterHandler] = [
    list_decisions,
    savings,
    dashboard,
    what_if,
    compare_routers,
    ui,
]
