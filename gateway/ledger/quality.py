"""Is routing keeping quality? The figures the dashboard draws from users' feedback and from
shadow verdicts, as pure functions over ledger rows (no store, no HTTP).

    normalise(0.0, "unit")                    # -1.0: every score is kept on one -1..1 scale
    reliability([(0.83, "strong"), ...])      # judged strong wins per P(LABEL_0) bucket
    quality_kept(judged, threshold=0.5)       # share of answers as good as the strong model's
    wilson(k, n)                              # 95 % Wilson score interval of k successes in n

RouteLLM's labels give the meaning of a verdict: LABEL_0 = the strong model's answer wins,
LABEL_1 = a tie, LABEL_2 = the weak model's answer wins. P(LABEL_0) is therefore the predicted
chance of a `strong` verdict, and a well-calibrated router's buckets lie on the diagonal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

__all__ = [
    "FEEDBACK_SCALES",
    "VERDICTS",
    "FeedbackScale",
    "Verdict",
    "normalise",
    "quality_kept",
    "reliability",
    "wilson",
]

Verdict = Literal["strong", "tie", "weak"]
"""Which answer the judge preferred: the strong model's, neither, or the weak model's."""
VERDICTS: tuple[Verdict, ...] = ("strong", "tie", "weak")
FeedbackScale = Literal["signed", "unit"]
"""How a client wrote its feedback score: `signed` -1..1 (thumbs down/up), `unit` 0..1."""
FEEDBACK_SCALES: tuple[FeedbackScale, ...] = ("signed", "unit")
Z95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""


def normalise(score: float, scale: FeedbackScale) -> float:
    """`score` on the ledger's one scale, -1 (bad) to 1 (good): a `unit` score s is 2s - 1."""
    return 2.0 * score - 1.0 if scale == "unit" else score


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95 % by default); None when n is 0. Chosen
    over the normal approximation because it stays inside 0..1 and is sound for the small
    samples a low shadow share gives."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def reliability(judged: Iterable[tuple[float, Verdict]], bins: int = 10) -> list[dict[str, Any]]:
    """The reliability diagram: judged requests grouped by P(LABEL_0) into `bins` equal
    buckets; for each, the mean predicted win rate beside the judged one (strong verdicts over
    judged requests, ties not counted as wins, as LABEL_0 does not count them)."""
    groups: list[list[tuple[float, Verdict]]] = [[] for _ in range(bins)]
    for win_rate, verdict in judged:
        groups[min(max(int(win_rate * bins), 0), bins - 1)].append((win_rate, verdict))
    out = []
    for i, group in enumerate(groups):
        n = len(group)
        counts: dict[str, int] = {v: sum(1 for _, got in group if got == v) for v in VERDICTS}
        interval = wilson(counts["strong"], n)
        out.append(
            {
                "low": i / bins,
                "high": (i + 1) / bins,
                "judged": n,
                **counts,
                "predicted": sum(w for w, _ in group) / n if n else None,
                "judged_win_rate": counts["strong"] / n if n else None,
                "interval": list(interval) if interval else None,
            }
        )
    return out


def quality_kept(judged: Iterable[tuple[float, Verdict]], threshold: float) -> dict[str, Any]:
    """What the win-rate rule keeps at `threshold`, on the judged requests: a request with
    P(LABEL_0) ≥ threshold goes to the strong model and keeps its quality; one below goes to
    the weak model and keeps it unless the judge preferred the strong answer. `kept` is the
    share of requests whose answer is as good as the strong model's, with its 95 % Wilson
    interval; `strong_share` is the share the rule sends to the strong model."""
    n = kept = strong = 0
    for win_rate, verdict in judged:
        n += 1
        goes_strong = win_rate >= threshold
        strong += goes_strong
        kept += goes_strong or verdict != "strong"
    interval = wilson(kept, n)
    return {
        "threshold": threshold,
        "judged": n,
        "kept": kept / n if n else None,
        "interval": list(interval) if interval else None,
        "interval_kind": "wilson-95",
        "strong_share": strong / n if n else None,
    }
