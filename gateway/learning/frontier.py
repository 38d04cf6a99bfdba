"""Accuracy against cost, as RouterBench measures it: the maths behind `evaluate` for many-model
routers, on (cost, accuracy) operating points.

- `hull_vertices`: the non-decreasing upper convex hull of points. Two operating points can be
  mixed at random (a share of requests at each), so every point on a segment between two of
  them is reachable, and spending more never has to lose accuracy.
- `aiq`: the area under that hull over a cost range, divided by the range's width (RouterBench's
  AIQ); below the cheapest point there is no operating point, so the area there is 0.
- `step_area`: the same area under the step curve of picking, for each budget, the most accurate
  single point that fits it (what a user without a router or random mixing does).
- `sweep`: the operating points of a router for a dense range of cost weights, by the serving
  rule itself (`gateway.routing.weighing.choose`).

Costs are whatever unit the caller uses (`evaluate`: the chosen model's blended price, USD per
million tokens); accuracy is the mean quality (0–1).
"""

from __future__ import annotations

import numpy as np

from gateway.routing.weighing import choose

__all__ = ["aiq", "hull_vertices", "step_area", "sweep", "weights"]

SWEEP = 121
"""Cost weights in a sweep: 0, then geometrically spaced up to always-the-cheapest."""


def hull_vertices(costs: np.ndarray, accuracy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The vertices of the non-decreasing upper convex hull, by increasing cost: from the
    cheapest point (the best of equally cheap ones) up to the most accurate point."""
    order = np.lexsort((-accuracy, costs))
    xs, ys = costs[order], accuracy[order]
    keep = np.append(True, xs[1:] != xs[:-1])  # the best of each cost
    xs, ys = xs[keep], ys[keep]
    peak = int(np.argmax(ys))  # the first of the most accurate: nothing after it adds
    xs, ys = xs[: peak + 1], ys[: peak + 1]
    hull: list[int] = []
    for i in range(len(xs)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b lies on or under the segment a→i: it is no vertex of the upper hull.
            cross = (xs[b] - xs[a]) * (ys[i] - ys[a]) - (ys[b] - ys[a]) * (xs[i] - xs[a])
            if cross >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    return xs[hull], ys[hull]


def _area(xs: np.ndarray, ys: np.ndarray, lo: float, hi: float) -> float:
    """∫ over [lo, hi] of the piecewise-linear curve through (xs, ys), flat after its last
    vertex and 0 before its first."""
    start = max(lo, float(xs[0]))
    if hi <= start:
        return 0.0
    inside = xs[(xs > start) & (xs < hi)]
    grid = np.concatenate(([start], inside, [hi]))
    values = np.interp(grid, xs, ys)
    return float(np.sum(np.diff(grid) * (values[1:] + values[:-1]) / 2))


def aiq(costs: np.ndarray, accuracy: np.ndarray, lo: float, hi: float) -> float:
    """RouterBench's AIQ of these points over [lo, hi]: the mean of their non-decreasing
    convex hull over the range (`hi > lo`)."""
    xs, ys = hull_vertices(np.asarray(costs, float), np.asarray(accuracy, float))
    return _area(xs, ys, lo, hi) / (hi - lo)


def step_area(costs: np.ndarray, accuracy: np.ndarray, lo: float, hi: float) -> float:
    """The mean over [lo, hi] of the best accuracy among the points whose cost fits the budget
    (0 where none does)."""
    order = np.argsort(costs, kind="stable")
    xs = np.asarray(costs, float)[order]
    best = np.maximum.accumulate(np.asarray(accuracy, float)[order])
    edges = np.clip(np.append(xs, hi), lo, hi)
    return float(np.sum(np.diff(edges) * best)) / (hi - lo)


def weights(relative_costs: np.ndarray, count: int = SWEEP) -> np.ndarray:
    """0, then `count - 1` weights spaced geometrically up to one past which the cheapest
    model wins whatever the predicted qualities (they lie in 0..1)."""
    gaps = np.diff(np.unique(relative_costs))
    top = 1.05 / float(gaps.min()) if len(gaps) else 1.0
    return np.concatenate(([0.0], np.geomspace(1e-3, top, count - 1)))


def sweep(quality: np.ndarray, relative_costs: np.ndarray, cost_weights: np.ndarray) -> np.ndarray:
    """The model chosen for every prompt at every weight: (weights × prompts) indices."""
    return np.stack([choose(quality, relative_costs, float(w)) for w in cost_weights])
