"""`GET /v1/routers/compare`: an incumbent router and its candidate side by side, from the ledger.

    report = await compare(ledger, settings, incumbent="router", candidate="my-router")

- **Arms** (canary): the requests each router decided (a row's `router`): requests, strong
  share, cost and saving against the baseline, latency, and judged quality kept (the share of
  judged requests whose answer was as good as the strong model's: sent to the strong model, or
  judged a tie or a weak win) with its 95 % Wilson interval.
- **Shadow**: the incumbent's requests on which the candidate also decided (`candidate_model`):
  how often the two disagreed, and on the judged disagreements, which of the two the verdict
  bore out (the strong model's answer won: the one that chose it was right; a tie or a weak
  win: the one that chose the weak model was), with the candidate's share and its interval.

`separated` says whether the intervals tell the two apart yet; `summary` says it in a sentence.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from gateway.ledger.quality import wilson
from gateway.ledger.writer import Ledger, decisions, verdicts
from gateway.settings.load import Settings

__all__ = ["compare"]

STRONG_WON = "strong"


async def compare(
    ledger: Ledger, settings: Settings, incumbent: str, candidate: str, since: float | None
) -> dict[str, Any]:
    return await asyncio.to_thread(_compare, ledger, settings, incumbent, candidate, since)


def _rows(ledger: Ledger, names: Sequence[str], since: float | None) -> list[Any]:
    ledger.ensure_schema()
    query = (
        sa.select(
            decisions.c.router,
            decisions.c.model,
            decisions.c.cost_usd,
            decisions.c.baseline_cost_usd,
            decisions.c.total_ms,
            decisions.c.classify_ms,
            decisions.c.candidate_model,
            verdicts.c.verdict,
            verdicts.c.strong,
        )
        .select_from(decisions.outerjoin(verdicts, verdicts.c.request_id == decisions.c.id))
        .where(decisions.c.router.in_(names))
    )
    if since is not None:
        query = query.where(decisions.c.created >= since)
    with ledger.engine.connect() as conn:
        return list(conn.execute(query))


def _p50(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _arm(name: str, rows: list[Any], settings: Settings) -> dict[str, Any]:
    spec = settings.routers[name]
    n = len(rows)
    strong = sum(1 for r in rows if r.model == spec.strong) if spec.strong else None
    spent = sum(r.cost_usd or 0.0 for r in rows)
    baseline = sum(r.baseline_cost_usd or 0.0 for r in rows)
    judged = [r for r in rows if r.verdict is not None]
    kept = sum(1 for r in judged if r.model == r.strong or r.verdict != STRONG_WON)
    return {
        "router": name,
        "checkpoint": spec.classifier,
        "requests": n,
        "strong_share": strong / n if n and strong is not None else None,
        "cost_usd": spent,
        "baseline_cost_usd": baseline,
        "saved_usd": baseline - spent,
        "judged": len(judged),
        "quality_kept": kept / len(judged) if judged else None,
        "quality_kept_interval": wilson(kept, len(judged)),
        "total_ms_p50": _p50([r.total_ms for r in rows if r.total_ms is not None]),
        "classify_ms_p50": _p50([r.classify_ms for r in rows if r.classify_ms is not None]),
    }


def _shadow(rows: list[Any]) -> dict[str, Any]:
    shadowed = [r for r in rows if r.candidate_model is not None]
    apart = [r for r in shadowed if r.candidate_model != r.model]
    judged = [r for r in apart if r.verdict is not None]
    verdict_counts = {
        v: sum(1 for r in judged if r.verdict == v) for v in ("strong", "tie", "weak")
    }

    def right(chosen: str, row: Any) -> bool:
        return bool((chosen == row.strong) == (row.verdict == STRONG_WON))

    by_candidate = sum(1 for r in judged if right(r.candidate_model, r))
    return {
        "requests": len(shadowed),
        "disagreements": len(apart),
        "disagreement_rate": len(apart) / len(shadowed) if shadowed else None,
        "judged_disagreements": len(judged),
        "verdicts": verdict_counts,
        "candidate_right": by_candidate,
        "incumbent_right": len(judged) - by_candidate,
        "candidate_right_share": by_candidate / len(judged) if judged else None,
        "candidate_right_interval": wilson(by_candidate, len(judged)),
    }


def _compare(
    ledger: Ledger, settings: Settings, incumbent: str, candidate: str, since: float | None
) -> dict[str, Any]:
    rows = _rows(ledger, (incumbent, candidate), since)
    arms = [
        _arm(name, [r for r in rows if r.router == name], settings)
        for name in (incumbent, candidate)
    ]
    shadow = _shadow([r for r in rows if r.router == incumbent])
    a, b = (arm["quality_kept_interval"] for arm in arms)
    arms_apart = a is not None and b is not None and (a[1] < b[0] or b[1] < a[0])
    interval = shadow["candidate_right_interval"]
    shadow_apart = interval is not None and (interval[1] < 0.5 or interval[0] > 0.5)
    if arms_apart or shadow_apart:
        summary = "The intervals separate the two routers: the difference is not noise."
    else:
        summary = (
            "The intervals do not yet separate the two routers: keep the candidate running "
            "until more requests are judged."
        )
    return {
        "incumbent": arms[0],
        "candidate": arms[1],
        "shadow": shadow,
        "separated": arms_apart or shadow_apart,
        "summary": summary,
    }
