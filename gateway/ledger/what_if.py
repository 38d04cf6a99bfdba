"""A threshold what-if: the recorded traffic re-decided as if one router's win-rate rule had
used another threshold, and which router decided a row.

    report = what_if_report(rows, 0.4, (strong_price, weak_price))   # `GET /v1/whatif`

Routers score on scales of their own (the gateway's BERT router P(LABEL_0), RouteLLM's MF router
its win rate, a router under `routers:` its own checkpoint's), so a threshold re-decides one
router's decisions and leaves every other row's recorded cost as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.ledger.pricing import Usage, cost
from gateway.settings.prices import Price
from gateway.settings.routing import ROUTER

__all__ = ["RULE_REASONS", "decided_by", "what_if_report"]

RULE_REASONS = ("strong", "weak")
"""Reasons of decisions made by the win-rate rule: the only ones a threshold what-if re-decides."""


def decided_by(recorded: str | None, router: str) -> bool:
    """Whether a ledger row whose `router` column holds `recorded` is `router`'s decision:
    `router` for the gateway's own BERT router, `router-mf` for RouteLLM's MF router, else a
    name under `routers:`. Rows written before the ledger named routers are the default's."""
    return recorded == router or (recorded is None and router == ROUTER)


def what_if_report(
    rows: Sequence[Any],
    threshold: float,
    prices: tuple[Price | None, Price | None],
    router: str = ROUTER,
) -> dict[str, Any]:
    """Re-decide the recorded traffic at `threshold`. Rows `router`'s win-rate rule decided
    (`decided_by`, reason `strong` or `weak`, P(LABEL_0) known) go to the strong model when
    P(LABEL_0) ≥ threshold, else the weak one, and cost their recorded tokens at that model's
    price; every other row keeps its recorded cost. Sums follow `savings_report`'s rule (cost
    and baseline known)."""
    strong_price, weak_price = prices
    routed = strong = unpriced = 0
    spent = baseline = 0.0
    for r in rows:
        row_cost = r.cost_usd
        if r.reason in RULE_REASONS and r.win_rate is not None and decided_by(r.router, router):
            routed += 1
            goes_strong = r.win_rate >= threshold
            strong += goes_strong
            usage = None
            if r.input_tokens is not None and r.output_tokens is not None:
                usage = Usage(r.input_tokens, r.output_tokens, r.cached_input_tokens or 0)
            row_cost = cost(strong_price if goes_strong else weak_price, usage)
        if row_cost is None or r.baseline_cost_usd is None:
            unpriced += r.status < 400
            continue
        spent += row_cost
        baseline += r.baseline_cost_usd
    return {
        "threshold": threshold,
        "requests": len(rows),
        "routed_requests": routed,
        "strong_share": strong / routed if routed else None,
        "cost_usd": spent,
        "baseline_cost_usd": baseline,
        "saved_usd": baseline - spent,
        "saved_share": (baseline - spent) / baseline if baseline > 0 else None,
        "unpriced_requests": unpriced,
    }
