"""`evaluate` for many-model routers: accuracy against mean cost per request on held-out prompts,
as RouterBench reports it, with bootstrap 95 % intervals.

    report = judge("mmlu-router", predicted, labels, prices)     # both (prompts × models)
    print(format_tradeoff([report], references(labels, prices, models)))

A router's operating points come from sweeping the cost weight densely (`frontier.weights`) and
choosing each prompt's model by the serving rule itself (`gateway.routing.weighing.choose`): the
cost of a request is the chosen model's blended price (USD per million tokens, three input
tokens to one output), its accuracy the chosen model's quality (0–1). Against the single models
(each a point) each router gets:

- `best_accuracy`: the best accuracy of any weight;
- `accuracy_at_best_cost`: the best accuracy of a weight costing no more than the most accurate
  single model does;
- `cost_to_match` (and `cost_share_to_match`, as a share of that model's cost): the least cost
  of a weight at least as accurate as that model (None when none is);
- `aiq`: the area under the non-decreasing convex hull of its points over the single models'
  cost range, divided by the range (RouterBench's AIQ); `aiq_vs_hull` subtracts the single
  models' own AIQ (their hull: mixing them at random), `aiq_vs_step` the area under picking
  the best single model that fits each budget.

Intervals resample the prompts with replacement (`ROUNDS` times, seeded) and recompute every
figure, differences included (paired: the same resample for router and single models).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gateway.learning.frontier import aiq, step_area, sweep, weights
from gateway.routing.weighing import choose, relative

__all__ = [
    "References",
    "TradeoffReport",
    "format_tradeoff",
    "judge",
    "plot_tradeoff",
    "references",
    "to_json",
]

ROUNDS = 1000
UNIT = "USD per million tokens (blended 3:1 input:output)"
FIGURES = (
    "best_accuracy",
    "accuracy_at_best_cost",
    "cost_to_match",
    "cost_share_to_match",
    "aiq",
    "aiq_vs_hull",
    "aiq_vs_step",
)
Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class TradeoffReport:
    """One router on held-out prompts: its sweep and its figures with their intervals."""

    name: str
    cost_weights: np.ndarray
    costs: np.ndarray
    accuracy: np.ndarray
    figures: dict[str, float | None]
    intervals: dict[str, Interval | None]
    examples: int


@dataclass(frozen=True, slots=True)
class References:
    """The single models, random choice and the oracle on the same prompts."""

    models: tuple[str, ...]
    costs: np.ndarray
    accuracy: np.ndarray
    random: tuple[float, float]
    """(cost, accuracy) of a model drawn uniformly for each prompt."""
    oracle: tuple[float, float]
    """(cost, accuracy) of the cheapest of the best answers to each prompt."""
    singles_aiq: float
    step_aiq: float

    @property
    def best(self) -> int:
        """The most accurate single model (the cheaper of equals)."""
        return int(np.lexsort((self.costs, -self.accuracy))[0])


def references(labels: np.ndarray, prices: np.ndarray, models: Sequence[str]) -> References:
    """The reference points of complete `labels` (prompts × models) at `prices`."""
    accuracy = labels.mean(0)
    lo, hi = _range(prices)
    oracle = choose(labels, relative(prices.tolist()), 1e-6)  # the best answer, then the cheapest
    rows = np.arange(len(labels))
    return References(
        tuple(models),
        np.asarray(prices, float),
        accuracy,
        (float(prices.mean()), float(accuracy.mean())),
        (float(prices[oracle].mean()), float(labels[rows, oracle].mean())),
        aiq(prices, accuracy, lo, hi),
        step_area(prices, accuracy, lo, hi),
    )


def _range(prices: np.ndarray) -> tuple[float, float]:
    lo, hi = float(prices.min()), float(prices.max())
    if hi <= lo:
        raise ValueError("the models cost the same: there is no cost range to judge a router on")
    return lo, hi


def figures(
    costs: np.ndarray, accuracy: np.ndarray, single_costs: np.ndarray, single_acc: np.ndarray
) -> dict[str, float | None]:
    """A router's figures from its operating points against the single models' points."""
    lo, hi = _range(single_costs)
    best = int(np.lexsort((single_costs, -single_acc))[0])
    best_cost, best_acc = float(single_costs[best]), float(single_acc[best])
    fits = accuracy[costs <= best_cost + 1e-12]
    matches = costs[accuracy >= best_acc - 1e-12]
    match = float(matches.min()) if matches.size else None
    area = aiq(costs, accuracy, lo, hi)
    return {
        "best_accuracy": float(accuracy.max()),
        "accuracy_at_best_cost": float(fits.max()) if fits.size else None,
        "cost_to_match": match,
        "cost_share_to_match": None if match is None else match / best_cost,
        "aiq": area,
        "aiq_vs_hull": area - aiq(single_costs, single_acc, lo, hi),
        "aiq_vs_step": area - step_area(single_costs, single_acc, lo, hi),
    }


def judge(
    name: str,
    predicted: np.ndarray,
    labels: np.ndarray,
    prices: np.ndarray,
    *,
    rounds: int = ROUNDS,
    seed: int = 0,
) -> TradeoffReport:
    """Sweep the cost weight over a router's `predicted` quality (prompts × models), score
    each choice against `labels` (complete, same shape) at `prices`, bootstrap the figures."""
    cost_weights = weights(relative(prices.tolist()))
    chosen = sweep(predicted, relative(prices.tolist()), cost_weights)  # weights × prompts
    rows = np.arange(len(labels))
    right = labels[rows, chosen]  # weights × prompts
    spent = prices[chosen]
    n = len(labels)
    single = labels.mean(0)
    report_figures = figures(spent.mean(1), right.mean(1), prices, single)
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=rounds)
    boot_right = right @ counts.T / n  # weights × rounds
    boot_spent = spent @ counts.T / n
    boot_single = counts @ labels / n  # rounds × models
    samples: dict[str, list[float]] = {k: [] for k in FIGURES}
    for r in range(rounds):
        found = figures(boot_spent[:, r], boot_right[:, r], prices, boot_single[r])
        for key, value in found.items():
            if value is not None:
                samples[key].append(value)
    intervals: dict[str, Interval | None] = {
        key: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if v else None
        for key, v in samples.items()
    }
    return TradeoffReport(
        name, cost_weights, spent.mean(1), right.mean(1), report_figures, intervals, n
    )


def to_json(reports: Sequence[TradeoffReport], refs: References) -> dict[str, Any]:
    """`evaluate --json` for many-model data."""
    best = refs.best
    return {
        "unit": UNIT,
        "examples": reports[0].examples if reports else None,
        "models": [
            {"name": m, "cost": float(c), "accuracy": float(a)}
            for m, c, a in zip(refs.models, refs.costs, refs.accuracy, strict=True)
        ],
        "best_single": {
            "name": refs.models[best],
            "cost": float(refs.costs[best]),
            "accuracy": float(refs.accuracy[best]),
        },
        "singles_aiq": refs.singles_aiq,
        "step_aiq": refs.step_aiq,
        "random": {"cost": refs.random[0], "accuracy": refs.random[1]},
        "oracle": {"cost": refs.oracle[0], "accuracy": refs.oracle[1]},
        "routers": [
            {
                "name": r.name,
                **r.figures,
                **{f"{k}_ci": r.intervals[k] for k in FIGURES},
                "curve": [
                    {"cost_weight": float(w), "cost": float(c), "accuracy": float(a)}
                    for w, c, a in zip(r.cost_weights, r.costs, r.accuracy, strict=True)
                ],
            }
            for r in reports
        ],
    }


def _value(value: float | None, digits: int = 4) -> str:
    return "never" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _ci(interval: Interval | None, digits: int = 4) -> str:
    return "" if interval is None else f"[{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def format_tradeoff(reports: Sequence[TradeoffReport], refs: References) -> str:
    """What `evaluate` prints for many-model data: the single models, the references, then
    one block per router with its figures and intervals."""
    best = refs.best
    lines = [f"cost: the chosen model's price, {UNIT}; accuracy: mean quality (0-1)", ""]
    lines.append(f"{'model':<40} {'cost':>8} {'accuracy':>8}")
    for i in np.argsort(refs.costs, kind="stable"):
        mark = "  <- most accurate" if i == best else ""
        lines.append(f"{refs.models[i]:<40} {refs.costs[i]:>8.4f} {refs.accuracy[i]:>8.4f}{mark}")
    lines += [
        f"{'random (uniform)':<40} {refs.random[0]:>8.4f} {refs.random[1]:>8.4f}",
        f"{'oracle (cheapest best answer)':<40} {refs.oracle[0]:>8.4f} {refs.oracle[1]:>8.4f}",
        f"single models: AIQ of their hull {refs.singles_aiq:.4f}, of the step curve "
        f"{refs.step_aiq:.4f}",
    ]
    labels = {
        "best_accuracy": "best accuracy",
        "accuracy_at_best_cost": f"accuracy at {refs.models[best]}'s cost",
        "cost_to_match": f"cost to match {refs.models[best]}",
        "cost_share_to_match": "  as a share of its cost",
        "aiq": "AIQ",
        "aiq_vs_hull": "AIQ - single models' hull",
        "aiq_vs_step": "AIQ - step curve",
    }
    for r in reports:
        lines += ["", f"{r.name} ({r.examples} prompts, {len(r.cost_weights)} cost weights)"]
        for key, label in labels.items():
            lines.append(f"  {label:<44} {_value(r.figures[key]):>8}  {_ci(r.intervals[key])}")
    return "\n".join(lines)


COLOURS = ("#2563eb", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be123c")


def plot_tradeoff(reports: Sequence[TradeoffReport], refs: References, path: Path) -> None:
    """A PNG of accuracy against mean cost per request: each router's sweep, the single models
    as labelled points, random and the oracle. Drawn headless (matplotlib's Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for i, r in enumerate(reports):
        order = np.argsort(r.costs, kind="stable")
        axes.plot(
            r.costs[order],
            r.accuracy[order],
            color=COLOURS[i % len(COLOURS)],
            marker=".",
            linewidth=1.5,
            label=f"{r.name} (AIQ {r.figures['aiq']:.3f})",
        )
    axes.scatter(refs.costs, refs.accuracy, color="#111827", zorder=3, label="single models")
    for name, cost, accuracy in zip(refs.models, refs.costs, refs.accuracy, strict=True):
        axes.annotate(
            name, (cost, accuracy), xytext=(3, -9), textcoords="offset points", fontsize=6
        )
    axes.scatter(*refs.random, marker="x", color="#6b7280", zorder=3, label="random")
    axes.scatter(*refs.oracle, marker="*", s=80, color="#ca8a04", zorder=3, label="oracle")
    axes.set_xlabel(f"mean cost per request ({UNIT})")
    axes.set_ylabel("accuracy (mean quality)")
    axes.set_title("Accuracy against cost, one point per cost weight")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, format="png")
