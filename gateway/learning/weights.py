"""`calibrate` for many-model routers: the cost weight that meets a target, found by replaying the
serving rule over a quality matrix.

    found = calibrate_weight(predicted, prices, cost_share=0.3, quality=labels)
    found.cost_weight, found.cost_share, found.quality_share

A target is one of:

- `cost_share` S: the mean cost per request at most S times the price of the strongest model
  (the one with the best mean quality): the smallest weight that spends no more;
- `quality_share` Q: at least Q of the strongest model's mean quality kept: the largest weight
  (the cheapest choices) that keeps it.

`predicted` is what the router predicts (prompts × models) and decides on; `quality` is what
the choices are worth: held-out labels (`routellm-gateway calibrate --router DIR --data ...`),
or, where no labels exist, the predictions themselves (the ledger's recorded `scores`). A higher
weight never picks a dearer model for a prompt, so cost falls as the weight rises and the sweep
is searched in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.learning.frontier import sweep, weights
from gateway.routing.weighing import relative

__all__ = ["Calibration", "calibrate_weight"]


@dataclass(frozen=True, slots=True)
class Calibration:
    """The weight found, what it gives, and the sweep it was read from."""

    cost_weight: float
    cost: float
    """Mean cost per request at that weight (the prices' unit)."""
    cost_share: float
    """That cost over the strongest model's price."""
    quality_share: float
    """Mean quality kept, over the strongest model's mean quality."""
    strongest: int
    """The column of the strongest model."""
    sweep: list[tuple[float, float, float]]
    """(weight, cost share, quality share) at every weight tried, by increasing weight."""


def calibrate_weight(
    predicted: np.ndarray,
    prices: np.ndarray,
    *,
    cost_share: float | None = None,
    quality_share: float | None = None,
    quality: np.ndarray | None = None,
) -> Calibration:
    """The weight meeting exactly one target (see the module's docstring); `ValueError` when
    none or both are given or a target is outside 0..1. With neither target reachable, the
    nearest end of the sweep."""
    if (cost_share is None) == (quality_share is None):
        raise ValueError("give one target: a cost share or a quality share")
    target = cost_share if cost_share is not None else quality_share
    if target is None or not 0.0 <= target <= 1.0:
        raise ValueError(f"the target {target} must be between 0 and 1")
    worth = predicted if quality is None else quality
    means = np.nanmean(worth, axis=0)
    strongest = int(np.lexsort((prices, -means))[0])
    cost_weights = weights(relative(prices.tolist()))
    chosen = sweep(predicted, relative(prices.tolist()), cost_weights)  # weights × prompts
    rows = np.arange(len(predicted))
    costs = prices[chosen].mean(1)
    kept = np.nanmean(worth[rows, chosen], axis=1)
    cost_shares = costs / prices[strongest] if prices[strongest] > 0 else np.zeros_like(costs)
    quality_shares = kept / means[strongest] if means[strongest] > 0 else np.ones_like(kept)
    if cost_share is not None:
        fits = np.flatnonzero(cost_shares <= cost_share + 1e-12)
        pick = int(fits[0]) if fits.size else len(cost_weights) - 1
    else:
        fits = np.flatnonzero(quality_shares >= target - 1e-12)
        pick = int(fits[-1]) if fits.size else 0
    return Calibration(
        float(cost_weights[pick]),
        float(costs[pick]),
        float(cost_shares[pick]),
        float(quality_shares[pick]),
        strongest,
        [
            (float(w), float(c), float(q))
            for w, c, q in zip(cost_weights, cost_shares, quality_shares, strict=True)
        ],
    )
