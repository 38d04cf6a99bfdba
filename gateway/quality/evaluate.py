"""`routellm-gateway evaluate`: a router's quality/cost trade-off on labelled prompts, in
RouteLLM's own terms.

    examples = read_examples(Path("eval.jsonl"), strong="gpt-4o", weak="gpt-4o-mini")
    report = await evaluate(examples, classifier, threshold=0.5)
    print(format_report(report)); plot(report, Path("curve.png"))

Every threshold on P(LABEL_0) sends a share of the prompts to the strong model; the quality
reached is the mean, over prompts, of the score of the model each one went to. With q_strong and
q_weak the means of the strong and weak models alone:

- PGR (performance gap recovered) = (q - q_weak) / (q_strong - q_weak);
- APGR = the area under PGR against the strong-call share, from 0 to 1 (trapezoids between
  the thresholds' points); random routing, whose expected PGR at share s is s, scores 0.5;
- CPT(x %) = the smallest strong-call share whose PGR ≥ x % (random routing needs x %).

Input (JSONL, one example a line), `prompt` (or chat `messages`) and a quality per model:

    {"prompt": "...", "quality": {"gpt-4o": 1, "gpt-4o-mini": 0}}      # numbers or booleans
    {"prompt": "...", "gpt-4o": true, "gpt-4o-mini": false}           # RouteLLM's columns

or rows of the ledger's export (`GET /v1/decisions?format=jsonl`) with a shadow `verdict`:
their recorded P(LABEL_0) is used as is, and the verdict gives the qualities (`strong`: 1/0,
`tie`: 1/1, `weak`: 0/1). Rows without a verdict are skipped and counted.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier.base import Classifier, Scores
from classifier.settings import ClassifierSettings, SettingsError
from gateway.routing.decider import STRONG_LABEL
from gateway.routing.human_text import text_of

__all__ = [
    "Example",
    "OnDemand",
    "Point",
    "Report",
    "apgr",
    "cpt",
    "evaluate",
    "format_report",
    "plot",
    "read_examples",
    "sweep",
]

BATCH = 64
TABLE_ROWS = 21
VERDICT_QUALITY = {"strong": (1.0, 0.0), "tie": (1.0, 1.0), "weak": (0.0, 1.0)}


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled prompt: its text (to classify) or its recorded P(LABEL_0), and the quality
    of the strong and the weak model's answers."""

    text: str | None
    win_rate: float | None
    strong: float
    weak: float


@dataclass(frozen=True, slots=True)
class Point:
    """The win-rate rule at one threshold: P(LABEL_0) ≥ threshold goes to the strong model."""

    threshold: float
    strong_share: float
    quality: float
    pgr: float


@dataclass(frozen=True, slots=True)
class Report:
    points: tuple[Point, ...]
    """From strong share 0 to 1."""
    q_strong: float
    q_weak: float
    apgr: float
    cpt50: float | None
    cpt80: float | None
    at_threshold: Point
    """The router's own operating point."""
    examples: int
    skipped: int = 0
    """Input rows without a quality (ledger rows that were never judged)."""


def read_examples(path: Path, strong: str, weak: str) -> tuple[list[Example], int]:
    """The examples of a JSONL file and the number of rows skipped; `SettingsError` naming the
    line and what it lacks."""
    examples: list[Example] = []
    skipped = 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SettingsError(f"--data: cannot read {path} ({exc.strerror})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise SettingsError(f"{where}: not a JSON object") from None
        if not isinstance(row, dict):
            raise SettingsError(f"{where}: not a JSON object")
        if "verdict" in row:
            example = _from_ledger(row, where)
            if example is None:
                skipped += 1
            else:
                examples.append(example)
            continue
        quality = row.get("quality", row)
        if not isinstance(quality, Mapping):
            raise SettingsError(f"{where}: `quality` must map model names to scores")
        examples.append(
            Example(
                _text(row, where),
                None,
                _score(quality, strong, where),
                _score(quality, weak, where),
            )
        )
    if not examples:
        raise SettingsError(f"{path}: no examples with a quality for both models")
    return examples, skipped


def _text(row: Mapping[str, Any], where: str) -> str:
    if isinstance(row.get("prompt"), str):
        text: str = row["prompt"].strip()
    elif isinstance(row.get("messages"), list):
        text = text_of(row["messages"])
    else:
        raise SettingsError(f"{where}: needs a `prompt` string or chat `messages`")
    if not text:
        raise SettingsError(f"{where}: the prompt is empty")
    return text


def _score(quality: Mapping[str, Any], model: str, where: str) -> float:
    value = quality.get(model)
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    raise SettingsError(
        f"{where}: no quality for {model!r}: give a number or a boolean for it (or name the "
        "data's model keys with --strong/--weak)"
    )


def _from_ledger(row: Mapping[str, Any], where: str) -> Example | None:
    judged = row.get("verdict")
    if judged is None:
        return None
    verdict = judged.get("verdict") if isinstance(judged, Mapping) else None
    if verdict is None:  # a shadow job that failed
        return None
    if verdict not in VERDICT_QUALITY:
        raise SettingsError(f"{where}: verdict {verdict!r} is not strong, tie or weak")
    scores = row.get("scores")
    win_rate = scores.get(STRONG_LABEL) if isinstance(scores, Mapping) else None
    if not isinstance(win_rate, int | float):
        raise SettingsError(f"{where}: a judged ledger row without its recorded scores")
    strong, weak = VERDICT_QUALITY[verdict]
    return Example(None, float(win_rate), strong, weak)


class OnDemand:
    """The configured classifier, opened on first use: a ledger export, whose rows carry their
    recorded P(LABEL_0), is evaluated without loading a model."""

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
        return {"status": "ok" if self._inner else "not opened", "model": self.name}

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


async def win_rates(examples: Sequence[Example], classifier: Classifier) -> list[float]:
    """P(LABEL_0) of every example: recorded, or from `classifier` in batches."""
    rates = [e.win_rate for e in examples]
    todo = [i for i, e in enumerate(examples) if e.win_rate is None]
    for start in range(0, len(todo), BATCH):
        chunk = todo[start : start + BATCH]
        scores = await classifier.classify([examples[i].text or "" for i in chunk])
        for i, s in zip(chunk, scores, strict=True):
            rates[i] = s.get(STRONG_LABEL)
    return [float(r) for r in rates if r is not None]


def sweep(rates: Sequence[float], strong: Sequence[float], weak: Sequence[float]) -> list[Point]:
    """One point per distinct P(LABEL_0) (as the threshold), plus the all-weak point, ordered
    by strong share. `SettingsError` when both models score the same (PGR is undefined)."""
    n = len(rates)
    q_strong, q_weak = sum(strong) / n, sum(weak) / n
    gap = q_strong - q_weak
    if gap == 0:
        raise SettingsError(
            "the strong and weak models score the same on this data: the quality gap a router "
            "recovers (PGR) is undefined"
        )
    order = sorted(range(n), key=lambda i: -rates[i])
    total = sum(weak)
    points = [Point(math.inf, 0.0, q_weak, 0.0)]
    k = 0
    while k < n:
        threshold = rates[order[k]]
        while k < n and rates[order[k]] == threshold:
            i = order[k]
            total += strong[i] - weak[i]
            k += 1
        quality = total / n
        points.append(Point(threshold, k / n, quality, (quality - q_weak) / gap))
    return points


def apgr(points: Sequence[Point]) -> float:
    """The area under PGR against the strong-call share (trapezoids)."""
    return sum(
        (b.strong_share - a.strong_share) * (a.pgr + b.pgr) / 2
        for a, b in itertools.pairwise(points)
    )


def cpt(points: Sequence[Point], target: float) -> float | None:
    """The smallest strong-call share whose PGR reaches `target` (0..1); None if none does."""
    return min((p.strong_share for p in points if p.pgr >= target - 1e-12), default=None)


async def evaluate(
    examples: Sequence[Example], classifier: Classifier, threshold: float, skipped: int = 0
) -> Report:
    """Classify the examples (those without a recorded P(LABEL_0)) and sweep the thresholds."""
    rates = await win_rates(examples, classifier)
    strong = [e.strong for e in examples]
    weak = [e.weak for e in examples]
    points = sweep(rates, strong, weak)
    chosen = [r >= threshold for r in rates]
    n = len(rates)
    quality = sum(s if c else w for s, w, c in zip(strong, weak, chosen, strict=True)) / n
    q_strong, q_weak = points[-1].quality, points[0].quality
    at = Point(threshold, sum(chosen) / n, quality, (quality - q_weak) / (q_strong - q_weak))
    return Report(
        tuple(points),
        q_strong,
        q_weak,
        apgr(points),
        cpt(points, 0.5),
        cpt(points, 0.8),
        at,
        n,
        skipped,
    )


def _share(value: float | None) -> str:
    return "never" if value is None else f"{value:.1%}"


def format_report(report: Report, router: str) -> str:
    """The table `evaluate` prints: strong share and quality per threshold (at most
    `TABLE_ROWS`, evenly spread over the shares), then the summary against random routing."""
    points = report.points
    if len(points) > TABLE_ROWS:
        step = (len(points) - 1) / (TABLE_ROWS - 1)
        points = tuple(points[round(i * step)] for i in range(TABLE_ROWS))
    lines = [f"{'threshold':>10}  {'strong':>7}  {'quality':>8}  {'PGR':>7}  {'random q':>8}"]
    for p in points:
        random_q = report.q_weak + p.strong_share * (report.q_strong - report.q_weak)
        threshold = "  (none)" if math.isinf(p.threshold) else f"{p.threshold:.4f}"
        lines.append(
            f"{threshold:>10}  {p.strong_share:>7.1%}  {p.quality:>8.4f}  {p.pgr:>7.1%}  "
            f"{random_q:>8.4f}"
        )
    at = report.at_threshold
    lines += [
        "",
        f"examples: {report.examples} ({len(report.points) - 1} distinct P(LABEL_0) values); "
        f"rows skipped: {report.skipped}",
        f"quality: strong alone {report.q_strong:.4f}, weak alone {report.q_weak:.4f}",
        f"{router} at threshold {at.threshold:.4f}: strong share {at.strong_share:.1%}, "
        f"quality {at.quality:.4f}, PGR {at.pgr:.1%}",
        f"{'':10}{'router':>10}  {'random':>8}",
        f"{'APGR':<10}{report.apgr:>10.4f}  {0.5:>8.4f}",
        f"{'CPT(50%)':<10}{_share(report.cpt50):>10}  {'50.0%':>8}",
        f"{'CPT(80%)':<10}{_share(report.cpt80):>10}  {'80.0%':>8}",
    ]
    return "\n".join(lines)


def plot(report: Report, path: Path, router: str) -> None:
    """A PNG of quality against strong-call share: the router's curve beside random routing's,
    with the router's operating point marked. Drawn headless (matplotlib's Agg backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    shares = [p.strong_share * 100 for p in report.points]
    axes.plot(
        shares,
        [p.quality for p in report.points],
        color="#2563eb",
        linewidth=2,
        label=f"{router} (APGR {report.apgr:.3f})",
    )
    axes.plot(
        [0, 100],
        [report.q_weak, report.q_strong],
        color="#6b7280",
        linestyle="--",
        label="random routing (APGR 0.500)",
    )
    at = report.at_threshold
    axes.scatter(
        [at.strong_share * 100],
        [at.quality],
        color="#dc2626",
        zorder=3,
        label=f"threshold {at.threshold:.3f}",
    )
    for value, name in ((report.q_strong, "strong only"), (report.q_weak, "weak only")):
        axes.axhline(value, color="#d1d5db", linewidth=1)
        axes.annotate(name, (100, value), xytext=(-4, 3), textcoords="offset points", ha="right")
    axes.set_xlabel("strong-model calls (%)")
    axes.set_ylabel("quality (mean score)")
    axes.set_xlim(0, 100)
    axes.set_title("Quality against strong-model calls")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, format="png")
