"""`routellm-gateway evaluate`: routers' quality/cost trade-offs on the same labelled prompts, in
RouteLLM's own terms, with bootstrap intervals.

    read = read_all([Path("eval.jsonl")], strong="gpt-4o", weak="gpt-4o-mini")
    report = await evaluate(read.examples, classifier, threshold=0.5, name="router")
    print(format_report([report])); plot([report], Path("curve.png"))

Every threshold on P(LABEL_0) sends a share of the prompts to the strong model; the quality
reached is the mean, over prompts, of the score of the model each one went to. With q_strong and
q_weak the means of the strong and weak models alone:

- PGR (performance gap recovered) = (q - q_weak) / (q_strong - q_weak);
- APGR = the area under PGR against the strong-call share, from 0 to 1 (trapezoids between
  the thresholds' points); random routing, whose expected PGR at share s is s, scores 0.5;
- CPT(x %) = the smallest strong-call share whose PGR ≥ x % (random routing needs x %).

The 95 % intervals are percentile bootstraps: the prompts are resampled with replacement
(`ROUNDS` times, seeded), and each figure is recomputed on every resample. Where two routers'
intervals overlap, this data does not tell them apart. The data's shapes:
`gateway.learning.examples`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classifier.base import Classifier, Scores
from classifier.settings import ClassifierSettings, SettingsError
from gateway.learning.examples import Example
from gateway.routing.decider import STRONG_LABEL

__all__ = [
    "Curve",
    "OnDemand",
    "RouterReport",
    "bootstrap",
    "curve",
    "evaluate",
    "format_report",
    "plot",
    "summarise",
    "to_json",
]

BATCH = 64
TABLE_ROWS = 21
ROUNDS = 1000
"""Bootstrap resamples behind each interval."""
Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Curve:
    """The win-rate rule at every threshold, from strong share 0 to 1: P(LABEL_0) ≥ threshold
    goes to the strong model (the first point, threshold +inf, sends nothing)."""

    thresholds: np.ndarray
    shares: np.ndarray
    quality: np.ndarray
    pgr: np.ndarray
    q_strong: float
    q_weak: float

    @property
    def apgr(self) -> float:
        widths = np.diff(self.shares)
        return float(np.sum(widths * (self.pgr[1:] + self.pgr[:-1]) / 2))

    def cpt(self, target: float) -> float | None:
        """The smallest strong-call share whose PGR reaches `target` (0..1); None if none does."""
        reached = self.shares[self.pgr >= target - 1e-12]
        return float(reached.min()) if reached.size else None


def curve(rates: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> Curve:
    """One point per distinct P(LABEL_0), plus the all-weak point. `SettingsError` when both
    models score the same (PGR is undefined)."""
    n = len(rates)
    q_strong, q_weak = float(strong.mean()), float(weak.mean())
    gap = q_strong - q_weak
    if gap == 0:
        raise SettingsError(
            "the strong and weak models score the same on this data: the quality gap a router "
            "recovers (PGR) is undefined"
        )
    order = np.argsort(-rates, kind="stable")
    ranked = rates[order]
    gained = np.cumsum((strong - weak)[order])
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))  # last of each tie
    quality = np.concatenate(([q_weak], q_weak + gained[ends] / n))
    return Curve(
        np.concatenate(([math.inf], ranked[ends])),
        np.concatenate(([0.0], (ends + 1) / n)),
        quality,
        (quality - q_weak) / gap,
        q_strong,
        q_weak,
    )


def bootstrap(
    rates: np.ndarray, strong: np.ndarray, weak: np.ndarray, rounds: int = ROUNDS, seed: int = 0
) -> dict[str, Interval | None]:
    """95 % percentile intervals of APGR, CPT(50 %) and CPT(80 %) over resampled prompts (a
    resample where the models tie is left out; a CPT never reached counts as share 1)."""
    rng = np.random.default_rng(seed)
    figures: dict[str, list[float]] = {"apgr": [], "cpt50": [], "cpt80": []}
    n = len(rates)
    for _ in range(rounds):
        pick = rng.integers(0, n, n)
        if strong[pick].mean() == weak[pick].mean():
            continue
        sample = curve(rates[pick], strong[pick], weak[pick])
        figures["apgr"].append(sample.apgr)
        for name, target in (("cpt50", 0.5), ("cpt80", 0.8)):
            reached = sample.cpt(target)
            figures[name].append(1.0 if reached is None else reached)
    return {
        name: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if v else None
        for name, v in figures.items()
    }


@dataclass(frozen=True, slots=True)
class RouterReport:
    """One router on the data: its curve, its figures with their intervals, and its own
    operating point (strong share, quality and PGR at its threshold)."""

    name: str
    curve: Curve
    intervals: dict[str, Interval | None]
    threshold: float
    at_share: float
    at_quality: float
    examples: int

    @property
    def at_pgr(self) -> float:
        c = self.curve
        return (self.at_quality - c.q_weak) / (c.q_strong - c.q_weak)


class OnDemand:
    """A classifier opened on first use: a ledger export, whose rows carry their recorded
    P(LABEL_0), is evaluated without loading a model."""

    name = "on-demand"

    def __init__(self, settings: ClassifierSettings) -> None:
        self.settings = settings
        self._inner: Classifier | None = None

    async def classify(self, texts: Sequence[str]) -> list[Scores]:
        if self._inner is None:
            from classifier import open_classifier

            self._inner = await open_classifier(self.settings)
        return await self._inner.classify(texts)

    async def health(self) -> dict[str, object]:
        return {"status": "ok" if self._inner else "not opened", "model": self.settings.model}

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


async def win_rates(
    examples: Sequence[Example], classifier: Classifier, *, recorded: bool = True
) -> np.ndarray:
    """P(LABEL_0) of every example: recorded (when `recorded`), else from `classifier` in
    batches. `SettingsError` for an example with neither."""
    rates = [e.win_rate if recorded else None for e in examples]
    todo = [i for i, e in enumerate(examples) if rates[i] is None]
    if any(examples[i].text is None for i in todo):
        raise SettingsError(
            "a ledger row without its prompt can only be evaluated by the router that recorded "
            "its score: keep prompts (ROUTELLM_LEDGER_PROMPTS=1) to compare checkpoints on it"
        )
    for start in range(0, len(todo), BATCH):
        chunk = todo[start : start + BATCH]
        scores = await classifier.classify([examples[i].text or "" for i in chunk])
        for i, s in zip(chunk, scores, strict=True):
            rates[i] = s.get(STRONG_LABEL)
    return np.array([float(r or 0.0) for r in rates])


async def evaluate(
    examples: Sequence[Example],
    classifier: Classifier,
    threshold: float,
    name: str,
    *,
    recorded: bool = True,
    rounds: int = ROUNDS,
) -> RouterReport:
    """Classify the examples (those without a recorded P(LABEL_0), or all of them when not
    `recorded`), sweep the thresholds and bootstrap the figures."""
    rates = await win_rates(examples, classifier, recorded=recorded)
    return summarise(name, rates, examples, threshold, rounds)


def summarise(
    name: str, rates: np.ndarray, examples: Sequence[Example], threshold: float, rounds: int
) -> RouterReport:
    """The report of one router's P(LABEL_0) on the examples, at its threshold."""
    strong = np.array([e.strong for e in examples])
    weak = np.array([e.weak for e in examples])
    chosen = rates >= threshold
    return RouterReport(
        name,
        curve(rates, strong, weak),
        bootstrap(rates, strong, weak, rounds),
        threshold,
        float(chosen.mean()),
        float(np.where(chosen, strong, weak).mean()),
        len(examples),
    )


def _share(value: float | None) -> str:
    return "never" if value is None else f"{value:.1%}"


def _ci(interval: Interval | None, share: bool) -> str:
    if interval is None:
        return ""
    lo, hi = interval
    return f"[{lo:.1%}, {hi:.1%}]" if share else f"[{lo:.3f}, {hi:.3f}]"


def format_report(reports: Sequence[RouterReport], skipped: int = 0, excluded: int = 0) -> str:
    """What `evaluate` prints: the first router's strong share and quality per threshold (at
    most `TABLE_ROWS`, evenly spread), then one row per router beside random routing."""
    first = reports[0].curve
    step = max(1.0, (len(first.shares) - 1) / (TABLE_ROWS - 1))
    rows = sorted({min(round(i * step), len(first.shares) - 1) for i in range(TABLE_ROWS)})
    lines = [f"{'threshold':>10}  {'strong':>7}  {'quality':>8}  {'PGR':>7}  {'random q':>8}"]
    for i in rows:
        share = first.shares[i]
        random_q = first.q_weak + share * (first.q_strong - first.q_weak)
        t = first.thresholds[i]
        threshold = "  (none)" if math.isinf(t) else f"{t:.4f}"
        lines.append(
            f"{threshold:>10}  {share:>7.1%}  {first.quality[i]:>8.4f}  {first.pgr[i]:>7.1%}  "
            f"{random_q:>8.4f}"
        )
    width = max(10, *(len(r.name) for r in reports))
    lines += [
        f"({reports[0].name} above)",
        "",
        f"examples: {reports[0].examples}; rows skipped: {skipped}; excluded: {excluded}",
        f"quality: strong alone {first.q_strong:.4f}, weak alone {first.q_weak:.4f}",
    ]
    for r in reports:
        lines.append(
            f"{r.name} at threshold {r.threshold:.4f}: strong share {r.at_share:.1%}, "
            f"quality {r.at_quality:.4f}, PGR {r.at_pgr:.1%}"
        )
    lines.append(
        f"{'router':<{width}}  {'APGR':>6} {'95% CI':<16}  {'CPT(50%)':>8} {'95% CI':<16}  "
        f"{'CPT(80%)':>8} {'95% CI':<16}"
    )
    for r in reports:
        c, ci = r.curve, r.intervals
        lines.append(
            f"{r.name:<{width}}  {c.apgr:>6.4f} {_ci(ci['apgr'], False):<16}  "
            f"{_share(c.cpt(0.5)):>8} {_ci(ci['cpt50'], True):<16}  "
            f"{_share(c.cpt(0.8)):>8} {_ci(ci['cpt80'], True):<16}"
        )
    lines.append(f"{'random':<{width}}  {0.5:>6.4f} {'':<16}  {'50.0%':>8} {'':<16}  {'80.0%':>8}")
    return "\n".join(line.rstrip() for line in lines)


def to_json(reports: Sequence[RouterReport]) -> dict[str, Any]:
    """`evaluate --json`: each router's figures and intervals, and random routing's."""
    return {
        "routers": [
            {
                "name": r.name,
                "examples": r.examples,
                "threshold": r.threshold,
                "strong_share": r.at_share,
                "apgr": r.curve.apgr,
                "apgr_ci": r.intervals["apgr"],
                "cpt50": r.curve.cpt(0.5),
                "cpt50_ci": r.intervals["cpt50"],
                "cpt80": r.curve.cpt(0.8),
                "cpt80_ci": r.intervals["cpt80"],
            }
            for r in reports
        ],
        "random": {"apgr": 0.5, "cpt50": 0.5, "cpt80": 0.8},
    }


COLOURS = ("#2563eb", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be123c")


def plot(reports: Sequence[RouterReport], path: Path) -> None:
    """A PNG of quality against strong-call share: every router's curve beside random
    routing's, each router's operating point marked. Drawn headless (matplotlib's Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    first = reports[0].curve
    for i, r in enumerate(reports):
        colour = COLOURS[i % len(COLOURS)]
        axes.plot(
            r.curve.shares * 100,
            r.curve.quality,
            color=colour,
            linewidth=2,
            label=f"{r.name} (APGR {r.curve.apgr:.3f})",
        )
        axes.scatter([r.at_share * 100], [r.at_quality], color=colour, zorder=3)
    axes.plot(
        [0, 100],
        [first.q_weak, first.q_strong],
        color="#6b7280",
        linestyle="--",
        label="random routing (APGR 0.500)",
    )
    for value, name in ((first.q_strong, "strong only"), (first.q_weak, "weak only")):
        axes.axhline(value, color="#d1d5db", linewidth=1)
        axes.annotate(name, (100, value), xytext=(-4, 3), textcoords="offset points", ha="right")
    axes.set_xlabel("strong-model calls (%)")
    axes.set_ylabel("quality (mean score)")
    axes.set_xlim(0, 100)
    axes.set_title("Quality against strong-model calls")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, format="png")
