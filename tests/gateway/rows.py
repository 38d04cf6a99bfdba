"""Ledger rows for tests: a known mix of decisions with exact, hand-checkable costs."""

from __future__ import annotations

import time
from typing import Any

from gateway.ledger.pricing import Usage, cost
from gateway.ledger.writer import DecisionRow, new_request_id
from gateway.settings.prices import Price

STRONG_PRICE = Price(input=2.5, output=10.0)
WEAK_PRICE = Price(input=0.15, output=0.6, cached_input=0.075)
PRICES_ENV = (
    '{"strong": {"input": 2.5, "output": 10},'
    ' "weak": {"input": 0.15, "output": 0.6, "cached_input": 0.075}}'
)


def row(
    model: str, win_rate: float | None, *, created: float | None = None, **fields: Any
) -> DecisionRow:
    """A routed row: `model` chosen with P(LABEL_0) = `win_rate`, 1000 in / 200 out tokens,
    priced at the test prices against the strong model as baseline."""
    usage = Usage(fields.pop("input_tokens", 1000), fields.pop("output_tokens", 200))
    price = {"strong": STRONG_PRICE, "weak": WEAK_PRICE}.get(model)
    scores = (
        None if win_rate is None else {"LABEL_0": win_rate, "LABEL_1": 1 - win_rate, "LABEL_2": 0.0}
    )
    values: dict[str, Any] = {
        "id": new_request_id(),
        "created": time.time() if created is None else created,
        "requested": "router",
        "model": model,
        "reason": fields.pop("reason", "strong" if model == "strong" else "weak"),
        "status": 200,
        "stream": False,
        "label": "LABEL_0" if win_rate is not None else None,
        "score": win_rate,
        "scores": scores,
        "threshold": 0.5,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": cost(price, usage),
        "baseline_cost_usd": cost(STRONG_PRICE, usage),
        "classify_ms": 5.0,
        "first_byte_ms": 40.0,
        "total_ms": 90.0,
    }
    values.update(fields)
    return DecisionRow(**values)


def known_mix() -> list[DecisionRow]:
    """Two strong (P 0.9, 0.7) and three weak (P 0.4, 0.2, 0.1) answers, one direct weak
    answer without a price for its baseline, and one failed request."""
    return [
        row("strong", 0.9),
        row("strong", 0.7, stream=True),
        row("weak", 0.4),
        row("weak", 0.2, stream=True),
        row("weak", 0.1),
        row("weak", None, reason="direct", requested="weak", baseline_cost_usd=None),
        row(
            "strong",
            0.8,
            status=502,
            input_tokens=0,
            output_tokens=0,
            cost_usd=None,
            baseline_cost_usd=None,
        ),
    ]
