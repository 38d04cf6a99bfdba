"""The many-model rule: the model with the best predicted quality minus the cost weight times its
relative price.

    value(m) = quality(m) - cost_weight * price(m) / price(most expensive model of the router)

A model's price is its blended list price, three input tokens to one output token (USD per
million tokens, `gateway.settings.prices.Price.blended`). Dividing by the router's most
expensive model makes the weight read the same whatever the currency scale: at `cost_weight`
0.1 a model must be predicted 10 points of quality better to be worth the most expensive model's
whole price. 0 picks the best predicted quality regardless of cost; a large weight picks the
cheapest model. A tie goes to the cheaper.

`gateway.routing.decider` applies it per request; `calibrate` and `evaluate` apply it to
held-out data to find and judge weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def relative(prices: Sequence[float]) -> np.ndarray:
    """Prices as shares of the most expensive (all zero when every model is free)."""
    values = np.asarray(prices, dtype=np.float64)
    top = float(values.max()) if len(values) else 0.0
    return values / top if top > 0 else np.zeros_like(values)


def choose(quality: np.ndarray, costs: np.ndarray, cost_weight: float) -> np.ndarray:
    """For each row of `quality` (texts × models), the index of the model with the best value;
    `costs` are the models' relative prices. Ties go to the cheaper model."""
    value = np.atleast_2d(quality) - cost_weight * costs
    # Sorting the columns by price first makes argmax (which keeps the first maximum) prefer
    # the cheaper of equal values.
    order = np.argsort(costs, kind="stable")
    return np.asarray(order[np.argmax(value[:, order], axis=1)])
