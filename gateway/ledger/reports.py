"""The ledger's read side: the queries behind `/v1/decisions`, `/v1/savings`, `/v1/whatif`,
`/v1/dashboard`, calibration and the shadow budget, and the reports built from their rows.

    ledger = Ledger.open(settings)
    await ledger_reports.savings(ledger, parse_since("24h"))   # what `/v1/savings` answers

Each query makes the schema if the writer has not yet, then runs on a worker thread
(`asyncio.to_thread`) so that the event loop never waits on the store. The report builders
(`savings_report`, `percentiles`, and `gateway.ledger.what_if`) are plain functions of rows.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gateway.ledger.many import many_models
from gateway.ledger.pricing import lost_cache
from gateway.ledger.quality import Verdict, quality_kept, reliability
from gateway.ledger.what_if import decided_by, what_if_report
from gateway.ledger.writer import (
    ROW_FIELDS,
    DecisionRow,
    Ledger,
    VerdictRow,
    decisions,
    feedback,
    verdicts,
)
from gateway.settings.prices import Price
from gateway.settings.routing import ROUTER

__all__ = [
    "dashboard",
    "export",
    "parse_since",
    "percentiles",
    "recent_decisions",
    "savings",
    "savings_report",
    "shadow_spend",
    "what_if",
    "win_rates",
]

FALLBACK_REASONS = ("below_threshold", "classifier_error", "upstream_fallback")
DASHBOARD_ROWS = 200_000
"""The dashboard reads at most this many of the newest rows of its window."""

_FEEDBACK_FIELDS = ("score", "raw_score", "scale", "comment", "created")
_VERDICT_FIELDS = tuple(
    f.name for f in fields(VerdictRow) if f.name not in ("request_id", "win_rate")
)


async def recent_decisions(
    ledger: Ledger, limit: int = 100, since: float | None = None
) -> list[DecisionRow]:
    """The newest `limit` rows created at or after `since` (unix seconds), newest first."""
    return await asyncio.to_thread(_decisions, ledger, limit, since)


async def savings(ledger: Ledger, since: float | None = None) -> dict[str, Any]:
    """The `GET /v1/savings` report over rows created at or after `since`."""
    return await asyncio.to_thread(_savings, ledger, since)


async def what_if(
    ledger: Ledger, threshold: float, since: float | None = None, router: str = ROUTER
) -> dict[str, Any]:
    """Strong share and cost had `router`'s win-rate rule (the gateway's own by default) used
    `threshold` on the recorded traffic (`what_if_report`)."""
    return await asyncio.to_thread(_what_if, ledger, threshold, since, router)


async def dashboard(
    ledger: Ledger, since: float | None = None, buckets: int = 24
) -> dict[str, Any]:
    """Everything `/ui` draws: savings, share per model over time, the P(LABEL_0)
    histogram, latency percentiles, fallbacks and errors, and the what-if at the current
    threshold."""
    return await asyncio.to_thread(_dashboard, ledger, since, buckets)


async def win_rates(
    ledger: Ledger, since: float | None = None, router: str = ROUTER
) -> list[float]:
    """P(LABEL_0) of every request `router` (the gateway's own by default) classified since
    `since`, for calibration: other routers score on scales of their own."""
    return await asyncio.to_thread(_win_rates, ledger, since, router)


async def export(
    ledger: Ledger, limit: int = 100, since: float | None = None
) -> list[dict[str, Any]]:
    """`GET /v1/decisions` items: each decision row with its `feedback` and shadow
    `verdict` (None when it has none), newest first."""
    return await asyncio.to_thread(_export, ledger, limit, since)


async def shadow_spend(ledger: Ledger, since: float) -> float:
    """USD spent on shadow judging since `since` (unix seconds), as recorded."""
    return await asyncio.to_thread(_shadow_spend, ledger, since)


def _export(ledger: Ledger, limit: int, since: float | None) -> list[dict[str, Any]]:
    rows = _decisions(ledger, limit, since)
    ids = [row.id for row in rows]
    scores: dict[str, dict[str, Any]] = {}
    judged: dict[str, dict[str, Any]] = {}
    with ledger.engine.connect() as conn:
        for start in range(0, len(ids), 500):  # bounded IN lists
            chunk = ids[start : start + 500]
            query = sa.select(feedback).where(feedback.c.request_id.in_(chunk))
            for item in conn.execute(query):
                scores[item.request_id] = {k: getattr(item, k) for k in _FEEDBACK_FIELDS}
            query = sa.select(verdicts).where(verdicts.c.request_id.in_(chunk))
            for item in conn.execute(query):
                judged[item.request_id] = {k: getattr(item, k) for k in _VERDICT_FIELDS}
    return [
        {**row.as_json(), "feedback": scores.get(row.id), "verdict": judged.get(row.id)}
        for row in rows
    ]


def _shadow_spend(ledger: Ledger, since: float) -> float:
    ledger.ensure_schema()
    query = sa.select(sa.func.sum(verdicts.c.cost_usd)).where(verdicts.c.created >= since)
    with ledger.engine.connect() as conn:
        return float(conn.execute(query).scalar() or 0.0)


def _quality(ledger: Ledger, since: float | None) -> dict[str, Any]:
    """The dashboard's quality figures: feedback per model, the reliability diagram of
    judged requests, the quality kept at the current threshold, and the shadow spend."""
    settings = ledger.settings
    c, f, v = decisions.c, feedback.c, verdicts.c
    per_model = _select(
        c.model,
        sa.func.count(),
        sa.func.count(f.request_id),
        sa.func.avg(f.score),
        since=since,
    ).select_from(decisions.outerjoin(feedback, feedback.c.request_id == c.id))
    judged_query = sa.select(v.win_rate, v.verdict).where(v.verdict.is_not(None))
    spend_query = sa.select(sa.func.count(), sa.func.sum(v.cost_usd), sa.func.count(v.error))
    if since is not None:
        judged_query = judged_query.where(v.created >= since)
        spend_query = spend_query.where(v.created >= since)
    judged_query = judged_query.order_by(v.created.desc()).limit(DASHBOARD_ROWS)
    with ledger.engine.connect() as conn:
        groups = list(conn.execute(per_model.group_by(c.model)))
        judged = [(float(w), str(x)) for w, x in conn.execute(judged_query)]
        attempts, spent, failed = conn.execute(spend_query).one()
    pairs: list[tuple[float, Verdict]] = [
        (w, x)  # type: ignore[misc]  # the writer only stores `Verdict` values
        for w, x in judged
    ]
    return {
        "feedback": {
            model: {
                "requests": n,
                "feedback": rated,
                "rate": rated / n if n else 0.0,
                "mean_score": None if mean is None else float(mean),
            }
            for model, n, rated, mean in sorted(groups, key=lambda g: (-g[1], g[0]))
        },
        "reliability": reliability(pairs),
        "kept": quality_kept(pairs, settings.threshold),
        "shadow": {
            "attempts": attempts,
            "failed": failed,
            "judged": len(pairs),
            "spent_usd": float(spent or 0.0),
            "daily_budget_usd": settings.quality.daily_budget_usd,
            "share": settings.quality.shadow_share,
            "judge": settings.quality.judge,
        },
    }


def _select(*columns: Any, since: float | None) -> sa.Select[Any]:
    query = sa.select(*columns)
    if since is not None:
        query = query.where(decisions.c.created >= since)
    return query


def _decisions(ledger: Ledger, limit: int, since: float | None) -> list[DecisionRow]:
    ledger.ensure_schema()
    query = _select(*(decisions.c[name] for name in ROW_FIELDS), since=since)
    query = query.order_by(decisions.c.created.desc(), decisions.c.id.desc()).limit(limit)
    with ledger.engine.connect() as conn:
        return [DecisionRow(**row._asdict()) for row in conn.execute(query)]


def _savings(ledger: Ledger, since: float | None) -> dict[str, Any]:
    ledger.ensure_schema()
    c = decisions.c
    priced = sa.and_(c.cost_usd.is_not(None), c.baseline_cost_usd.is_not(None))
    query = _select(
        c.model,
        sa.func.count(),
        sa.func.sum(c.cost_usd),
        sa.func.sum(sa.case((priced, c.cost_usd))),
        sa.func.sum(sa.case((priced, c.baseline_cost_usd))),
        sa.func.sum(sa.case((sa.and_(c.status < 400, sa.not_(priced)), 1), else_=0)),
        since=since,
    ).group_by(c.model)
    with ledger.engine.connect() as conn:
        groups = list(conn.execute(query))
    report = savings_report(
        (model, n, own, cost_, base, unpriced) for model, n, own, cost_, base, unpriced in groups
    )
    return {**report, **_switches(ledger, since)}


def _switches(ledger: Ledger, since: float | None) -> dict[str, Any]:
    """Model switches within a conversation, and what they cost in lost prompt cache
    (`pricing.lost_cache`): `model_switches`, `cache_lost_usd`."""
    c = decisions.c
    query = (
        _select(c.conversation, c.model, c.input_tokens, since=since)
        .where(c.conversation.is_not(None), c.status < 400)
        .order_by(c.conversation, c.created)
    )
    models = ledger.settings.models
    switches, lost = 0, 0.0
    previous: Any = None
    with ledger.engine.connect() as conn:
        for row in conn.execute(query):
            same = previous is not None and previous.conversation == row.conversation
            if same and previous.model != row.model:
                switches += 1
                prefix = min(previous.input_tokens or 0, row.input_tokens or 0)
                target = models.get(row.model)
                lost += lost_cache(target.price if target else None, prefix)
            previous = row
    return {"model_switches": switches, "cache_lost_usd": lost}


def _rows_for_analysis(ledger: Ledger, since: float | None) -> list[Any]:
    c = decisions.c
    query = _select(
        c.created,
        c.model,
        c.reason,
        c.status,
        c.win_rate,
        c.input_tokens,
        c.cached_input_tokens,
        c.output_tokens,
        c.cost_usd,
        c.baseline_cost_usd,
        c.classify_ms,
        c.first_byte_ms,
        c.router,
        since=since,
    )
    query = query.order_by(c.created.desc()).limit(DASHBOARD_ROWS)
    with ledger.engine.connect() as conn:
        return list(conn.execute(query))


def _what_if(ledger: Ledger, threshold: float, since: float | None, router: str) -> dict[str, Any]:
    ledger.ensure_schema()
    rows = _rows_for_analysis(ledger, since)
    return what_if_report(rows, threshold, _rule_prices(ledger, router), router)


def _rule_prices(ledger: Ledger, router: str = ROUTER) -> tuple[Price | None, Price | None]:
    """The prices of `router`'s strong and weak models (`router-mf` uses the gateway's pair)."""
    settings = ledger.settings
    spec = settings.routers.get(router)
    pair = (spec.strong, spec.weak) if spec is not None else (settings.strong, settings.weak)
    strong, weak = (settings.models.get(name or "") for name in pair)
    return (strong.price if strong else None, weak.price if weak else None)


def _win_rates(ledger: Ledger, since: float | None, router: str) -> list[float]:
    ledger.ensure_schema()
    c = decisions.c
    query = _select(c.win_rate, c.router, since=since).where(c.win_rate.is_not(None))
    with ledger.engine.connect() as conn:
        return [float(v) for v, recorded in conn.execute(query) if decided_by(recorded, router)]


def _dashboard(ledger: Ledger, since: float | None, buckets: int) -> dict[str, Any]:
    ledger.ensure_schema()
    settings = ledger.settings
    now = time.time()
    rows = _rows_for_analysis(ledger, since)
    start = since if since is not None else min((r.created for r in rows), default=now)
    width = max((now - start) / buckets, 1e-9)
    series: list[Counter[str]] = [Counter() for _ in range(buckets)]
    histogram = [0] * 20
    reasons: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    classify, first_byte = [], []
    for r in rows:
        series[min(max(int((r.created - start) / width), 0), buckets - 1)][r.model] += 1
        if r.win_rate is not None and decided_by(r.router, ROUTER):
            histogram[min(max(int(r.win_rate * 20), 0), 19)] += 1
        reasons[r.reason] += 1
        if r.status >= 400:
            errors[str(r.status)] += 1
        if r.classify_ms is not None:
            classify.append(r.classify_ms)
        if r.first_byte_ms is not None:
            first_byte.append(r.first_byte_ms)
    threshold = settings.threshold
    return {
        "since": start,
        "until": now,
        "savings": _savings(ledger, since),
        "series": {
            "bucket_seconds": width,
            "starts": [start + i * width for i in range(buckets)],
            "models": sorted({m for bucket in series for m in bucket}),
            "counts": [dict(bucket) for bucket in series],
        },
        "histogram": {"bins": 20, "counts": histogram},
        "threshold": threshold,
        "strong": settings.strong,
        "weak": settings.weak,
        "baseline": settings.baseline,
        "latency_ms": {
            "classify": percentiles(classify),
            "first_byte": percentiles(first_byte),
        },
        "reasons": dict(reasons),
        "fallbacks": sum(reasons[r] for r in FALLBACK_REASONS),
        "errors": dict(errors),
        "what_if": what_if_report(rows, threshold, _rule_prices(ledger)),
        "quality": _quality(ledger, since),
        "many_models": many_models(ledger, since),
    }


def savings_report(
    groups: Iterable[tuple[str, int, float | None, float | None, float | None, int | None]],
) -> dict[str, Any]:
    """The `/v1/savings` object from per-model sums (model, requests, its known cost, cost and
    baseline cost of its priced requests, unpriced answered requests). `cost_usd` and
    `baseline_cost_usd` add up only requests whose cost and baseline cost are both known, so
    that `saved_usd` compares like with like; `unpriced_requests` counts answered requests
    left out for that reason (failed requests cost nothing and are not counted)."""
    groups = list(groups)
    total = sum(n for _, n, *_ in groups)
    spent = sum(g[3] or 0.0 for g in groups)
    baseline = sum(g[4] or 0.0 for g in groups)
    saved = baseline - spent
    return {
        "requests": total,
        "by_model": {
            model: {"requests": n, "share": n / total if total else 0.0, "cost_usd": own}
            for model, n, own, *_ in sorted(groups, key=lambda g: (-g[1], g[0]))
        },
        "cost_usd": spent,
        "baseline_cost_usd": baseline,
        "saved_usd": saved,
        "saved_share": saved / baseline if baseline > 0 else None,
        "unpriced_requests": sum(int(g[5] or 0) for g in groups),
    }


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p90/p99 by nearest rank (a value that was actually observed); None when empty."""
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        out[name] = ordered[max(math.ceil(q * len(ordered)) - 1, 0)] if ordered else None
    return out


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """`since` of the admin routes and the CLI: unix seconds (`1767225600`), an ISO-8601 time
    (`2026-01-01T00:00:00Z`), or a duration back from now (`30m`, `24h`, `7d`). Raises
    `ValueError` with a message a user can act on."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    now = time.time() if now is None else now
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT[match.group(2)]
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value):
            return value
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"since={text!r} is not a time: use unix seconds, an ISO-8601 time such as "
            "2026-01-01T00:00:00Z, or a duration such as 24h or 7d"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"since={text!r} has no time zone: add Z or +00:00")
    return moment.timestamp()
