"""What many-model routers did, from the ledger: per router, the weights its decisions used, and
per model how often it was chosen and its mean predicted quality over every decision (chosen or
not). The dashboard's "Many-model routers" panel draws it.

    many_models_report(rows)   # rows: (router, model, scores, cost_weight) of weighed decisions
    recorded_scores(ledger, "smart", since)   # each weighed decision's predicted qualities
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from gateway.ledger.writer import Ledger, decisions

ROWS = 200_000
"""At most this many of the newest weighed decisions are read."""


def many_models(ledger: Ledger, since: float | None) -> dict[str, Any]:
    """The report over weighed decisions created at or after `since` (blocking)."""
    c = decisions.c
    query = sa.select(c.router, c.model, c.scores, c.cost_weight).where(c.cost_weight.is_not(None))
    if since is not None:
        query = query.where(c.created >= since)
    query = query.order_by(c.created.desc()).limit(ROWS)
    with ledger.engine.connect() as conn:
        return many_models_report(tuple(row) for row in conn.execute(query))


def many_models_report(
    rows: Iterable[tuple[str | None, str, Mapping[str, float] | None, float]],
) -> dict[str, Any]:
    """`{"routers": {name: {"requests", "mean_cost_weight", "models": {model: {"chosen",
    "share", "mean_quality"}}}}}`."""
    weights: dict[str, list[float]] = defaultdict(list)
    chosen: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    quality: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for router, model, scores, weight in rows:
        name = router or "-"
        weights[name].append(weight)
        chosen[name][model] += 1
        for candidate, value in (scores or {}).items():
            quality[name][candidate].append(float(value))
    report: dict[str, Any] = {}
    for name, used in weights.items():
        models = sorted(set(chosen[name]) | set(quality[name]))
        report[name] = {
            "requests": len(used),
            "mean_cost_weight": sum(used) / len(used),
            "models": {
                m: {
                    "chosen": chosen[name][m],
                    "share": chosen[name][m] / len(used),
                    "mean_quality": (
                        sum(quality[name][m]) / len(quality[name][m]) if quality[name][m] else None
                    ),
                }
                for m in models
            },
        }
    return {"routers": report}


def recorded_scores(ledger: Ledger, router: str, since: float | None) -> list[dict[str, float]]:
    """The predicted quality per model of each weighed decision `router` made at or after
    `since`, newest first (blocking): what `calibrate --from-ledger --router-name` replays."""
    ledger.ensure_schema()
    c = decisions.c
    query = sa.select(c.scores).where(c.cost_weight.is_not(None), c.router == router)
    if since is not None:
        query = query.where(c.created >= since)
    query = query.order_by(c.created.desc()).limit(ROWS)
    with ledger.engine.connect() as conn:
        return [dict(scores) for (scores,) in conn.execute(query) if scores]
