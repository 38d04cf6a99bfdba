"""The HTTP API: every route of the real app (`create_app`), described by its OpenAPI operation
(the handler's docstring) or, for an API's endpoint, by its provider module's docstring; who may
call it, from the handler's guards; then the response headers and the decision's reasons."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, get_args

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import OpenAPI, Operation
from litestar.routes import HTTPRoute

from gateway.app import create_app
from gateway.http.handlers import API_BY_PATH
from gateway.reference.source import cell, constants, pyproject
from gateway.routing.decider import Reason
from gateway.settings.load import load_settings

HEADER = r"x-routellm-[a-z0-9-]+"
"""What the headers table must cover: every string in the code that is wholly such a name."""
HEADERS: dict[str, str] = {
    "x-routellm-request-id": "The request's id: its ledger row, its log line, and what "
    "`POST /v1/feedback` names. On every answer, errors and drain refusals included.",
    "x-routellm-model": "The model that answered (a name clients may ask for).",
    "x-routellm-reason": "Why that model: one of the reasons below.",
    "x-routellm-label": "The classifier's top label (`LABEL_0`..`LABEL_2`), or `none` when it "
    "did not run.",
    "x-routellm-score": "Mapping rule: the top label's probability. RouteLLM's rule: "
    "P(LABEL_0), the strong model's predicted win rate. `none` when not classified.",
    "x-routellm-conversation": "The conversation the request belongs to: sent by the client "
    "(kept as sent), or derived and echoed as `c-<hex>`; on every answer of a routed API.",
    "x-routellm-cost-weight": "Request: a many-model router's weight of price against quality "
    "for this request (a number ≥ 0). Response: the weight the decision used.",
    "x-routellm-scores": "A many-model decision: every candidate model's predicted quality, as "
    'compact JSON (`{"gpt-4o":0.83,"llama3":0.41}`).',
}
"""What each `x-routellm-*` response (or request) header means."""
HEADERS_TO_DESCRIBE = "add it to HEADERS in gateway/reference/http_api.py"
REASONS: dict[str, str] = {
    "mapped": "The mapping rule: the top label's model.",
    "unmapped": "The top label is not in the mapping: the fallback model.",
    "below_threshold": "The mapping rule's top score was below the threshold: the fallback.",
    "strong": "RouteLLM's rule: P(LABEL_0) ≥ the threshold, the strong model.",
    "weak": "RouteLLM's rule: P(LABEL_0) below the threshold, the weak model.",
    "tier": "A tiered router: the first tier whose `min_win_rate` ≤ P(LABEL_0).",
    "pinned": "The conversation (or the response it continues) keeps its model; the new "
    "turn's label and score are still reported.",
    "direct": "A model asked for by name: never classified, never swapped.",
    "no_text": "No user text to classify: the fallback model.",
    "classifier_error": "The classifier failed or timed out: the fallback model.",
    "upstream_fallback": "The chosen upstream failed before its first byte: the fallback.",
    "scored": "A many-model router: the best predicted quality minus the cost weight times "
    "the relative price.",
}
"""What each value of `gateway.routing.decider.Reason` means (`x-routellm-reason`)."""
REASONS_TO_DESCRIBE = "add it to REASONS in gateway/reference/http_api.py"
NOT_IN_SCHEMA: dict[str, str] = {
    "/ui": "The dashboard: static files (no CDN, works offline) that ask for the admin key and "
    "read `/v1/dashboard`, `/v1/whatif` and `/v1/routers/compare`.",
}
"""Routes the OpenAPI schema leaves out (static files), described here."""
ACCESS = {"require_key": "client key", "require_admin": "admin key"}
"""The guards a handler may carry, as the reader knows them (`ROUTELLM_API_KEYS`,
`ROUTELLM_ADMIN_KEYS`); a route without one is open."""


@dataclass(frozen=True, slots=True)
class Route:
    """One method on one path, as the reference shows it."""

    method: str
    path: str
    access: str
    description: str


def app() -> Litestar:
    """The real app, built from the default settings (nothing is opened: no lifespan runs)."""
    return create_app(load_settings({}))


def openapi(real: Litestar) -> OpenAPI:
    """The OpenAPI schema of `real`'s routes. The gateway serves no schema itself, so a second
    app with the same handlers and an OpenAPI config builds it; each handler's docstring is its
    operation's description."""
    handlers: dict[int, Any] = {}
    for route in real.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if handler.include_in_schema is not False:
                    handlers[id(handler)] = handler
    config = OpenAPIConfig(
        title="routellm-gateway",
        version=str(pyproject()["project"]["version"]),
        use_handler_docstrings=True,
        render_plugins=[JsonRenderPlugin()],
    )
    return Litestar(route_handlers=list(handlers.values()), openapi_config=config).openapi_schema


def routes() -> list[Route]:
    """Every method on every path the real app serves (but `OPTIONS` and `HEAD`)."""
    real = app()
    schema = openapi(real)
    found = []
    for route in real.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method, (handler, _) in sorted(route.route_handler_map.items()):
            if method in ("OPTIONS", "HEAD"):
                continue
            path = route.path_format or "/"
            base = path.split("/{", 1)[0]
            if "{" in path and base in NOT_IN_SCHEMA:
                continue  # a static file under a documented directory
            guards = [getattr(g, "__name__", "") for g in handler.guards or []]
            access = ", ".join(ACCESS[g] for g in guards if g in ACCESS) or "open"
            found.append(Route(method, path, access, _description(schema, method, path)))
    # The APIs first, then the other /v1 routes, then the rest.
    return sorted(
        found, key=lambda r: (r.path not in API_BY_PATH, not r.path.startswith("/v1/"), r.path)
    )


def _description(schema: OpenAPI, method: str, path: str) -> str:
    if path in API_BY_PATH and path != "/v1/route":
        doc = sys.modules[type(API_BY_PATH[path]).__module__].__doc__ or ""
        return " ".join(doc.split("\n\n")[0].split())
    item = (schema.paths or {}).get(path)
    operation: Operation | None = getattr(item, method.lower(), None) if item else None
    if operation is not None and operation.description:
        return " ".join(operation.description.split())
    return NOT_IN_SCHEMA.get(path, "")


def headers_in_code() -> dict[str, list[str]]:
    return constants(HEADER)


def reasons_in_code() -> tuple[str, ...]:
    """The values of `gateway.routing.decider.Reason`."""
    return tuple(str(reason) for reason in get_args(Reason))


def page() -> str:
    """The HTTP API page."""
    lines = [
        "# HTTP API",
        "",
        "Generated from the app when the site is built: its routes and their handlers' "
        "docstrings (the OpenAPI schema Litestar builds from them), its guards, and the "
        "headers and reasons the code sets. *client key*: a key from `ROUTELLM_API_KEYS` "
        "as `Authorization: Bearer` (or `x-api-key`), open when none is set; *admin key*: "
        "one from `ROUTELLM_ADMIN_KEYS`. Errors are always in the API's own shape, "
        '`{"error": {"message", "type", "param", "code"}}` for OpenAI\'s.',
        "",
        "## Routes",
        "",
        "| method | path | who | what it does |",
        "|---|---|---|---|",
    ]
    for route in routes():
        lines.append(
            f"| {route.method} | `{route.path}` | {route.access} | {cell(route.description)} |"
        )
    lines += ["", "## Response headers", "", "| header | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {cell(text)} |" for name, text in HEADERS.items()]
    lines += [
        "",
        "## Reasons",
        "",
        "The values of `x-routellm-reason`, of the ledger's `reason` and of the "
        "`routellm_requests_total` metric's `reason` label.",
        "",
        "| reason | when |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {cell(REASONS.get(name, ''))} |" for name in reasons_in_code()]
    return "\n".join(lines) + "\n"
