"""Classifier speed: our in-process classifier per runtime/dtype vs RouteLLM's BERTRouter.

    .venv/bin/python bench/classifier_bench.py                 # full: <= ~15 min (first run
                                                               #   also exports ONNX: + ~5 min)
    .venv/bin/python bench/classifier_bench.py --quick         # <= ~3 min once exports are cached
    .venv/bin/python bench/classifier_bench.py --prompts 32 --callers 1,16 --dtypes float32,int8

What it measures, all in this one run, on bench/prompts.py's mixed-length prompts (unique, so
with the classifier cache disabled nothing is answered from a cache):

- our configurations: `float32` (runtime auto -> ONNX Runtime), `bfloat16` (torch), `int8`
  (auto -> ONNX Runtime int8), and for reference `torch-float32` / `torch-int8`. Callers are
  asyncio tasks each awaiting `LocalClassifier.classify([prompt])`, one prompt at a time, through
  the real micro-batcher; C callers split the prompts as prompts[k::C].
- RouteLLM `BERTRouter`: bench/routellm_baseline.py run under /work/routellm-venv/bin/python as a
  subprocess (same prompts, same caller split). Its server calls the model synchronously on the
  event loop, so its C callers are served serially. Without that venv an in-process equivalent
  (torch float32, sdpa attention, one unpadded pass per prompt under no_grad, serial) stands in,
  labelled as such.

The model is the base-size random checkpoint (hidden 768, 12 layers, vocab 250002) in
bench/.cache/bert-base, built if missing. A random head gives P(LABEL_0) ~ 1/3 for every prompt,
which makes routing-decision agreement meaningless, so the bench uses a copy in
bench/.cache/bert-base-spread whose classifier head output weights are scaled up until the
logit spread across prompts is about 1.5 (P(LABEL_0) then spreads over most of 0..1); speed is
unaffected. Decision agreement is measured at the P(LABEL_0) thresholds that route 25/50/75 % of
the prompts to the strong model under float32.

ONNX exports are cached in bench/.cache/onnx (reused across runs; the first run pays them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CACHE = ROOT / "bench" / ".cache"
BASE = CACHE / "bert-base"
SPREAD = CACHE / "bert-base-spread"
ONNX_CACHE = CACHE / "onnx"
ROUTELLM_PYTHON = Path("/work/routellm-venv/bin/python")
# name -> (dtype, runtime)
CONFIGS: dict[str, tuple[str, str]] = {
    "float32": ("float32", "auto"),
    "bfloat16": ("bfloat16", "auto"),
    "int8": ("int8", "auto"),
    "torch-float32": ("float32", "torch"),
    "torch-int8": ("int8", "torch"),
}
TARGET_SPREAD = 1.5
BUCKETS = ((0, 31, "8-31"), (32, 127, "32-127"), (128, 10_000, "128-400"))


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


# --- checkpoints ---


def ensure_checkpoints() -> Path:
    """The spread-head copy of the base checkpoint, building either when missing."""
    from classifier.synthetic import build_checkpoint

    if not (BASE / "model.safetensors").exists():
        log(f"building {BASE} (random base-size checkpoint, ~1 min)")
        build_checkpoint(BASE, hidden=768, layers=12, vocab=250002)
    if (SPREAD / "model.safetensors").exists():
        return SPREAD
    import shutil

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bench.prompts import make_prompts

    log(f"building {SPREAD}: {BASE} with its head's output weights scaled up")
    tok = AutoTokenizer.from_pretrained(BASE)
    model = AutoModelForSequenceClassification.from_pretrained(BASE).eval()
    prompts, _ = make_prompts(24, seed=99, checkpoint=BASE)
    with torch.inference_mode():
        logits = torch.cat([model(**tok([p], return_tensors="pt")).logits for p in prompts])
    # spread of "strong vs the rest" across prompts: scale it to TARGET_SPREAD, centre it at 0
    margin = logits[:, 0] - torch.logsumexp(logits[:, 1:], dim=1)
    scale = TARGET_SPREAD / max(float(margin.std()), 1e-6)
    head = model.classifier.out_proj
    with torch.no_grad():
        head.weight.mul_(scale)
        head.bias.mul_(scale)
        logits = torch.cat([model(**tok([p], return_tensors="pt")).logits for p in prompts])
        margin = logits[:, 0] - torch.logsumexp(logits[:, 1:], dim=1)
        head.bias[0] -= margin.mean()
    tmp = SPREAD.with_name(SPREAD.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "synthetic.json").write_text(json.dumps({"base": str(BASE), "head_scale": scale}))
    tmp.rename(SPREAD)
    return SPREAD


# --- RouteLLM baseline ---


def routellm(checkpoint: Path, n: int, callers: list[int]) -> dict[str, Any]:
    if ROUTELLM_PYTHON.exists():
        cmd = [
            str(ROUTELLM_PYTHON),
            str(ROOT / "bench" / "routellm_baseline.py"),
            "--checkpoint",
            str(checkpoint),
            "--n",
            str(n),
            "--callers",
            ",".join(map(str, callers)),
        ]
        log("RouteLLM:", shlex.join(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        if done.returncode == 0:
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
            result["label"] = "RouteLLM BERTRouter (routellm venv, subprocess)"
            return result
        log("RouteLLM baseline failed; using the in-process equivalent:", done.stderr[-500:])
    return routellm_equivalent(checkpoint, n, callers)


def routellm_equivalent(checkpoint: Path, n: int, callers: list[int]) -> dict[str, Any]:
    """BERTRouter.calculate_strong_win_rate, reproduced: torch float32, one pass per prompt."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bench.prompts import make_prompts

    prompts, _ = make_prompts(n + 4, checkpoint=checkpoint)
    warm, prompts = prompts[n:], prompts[:n]
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=3)
    tok = AutoTokenizer.from_pretrained(checkpoint)

    def rate(p: str) -> float:
        with torch.no_grad():
            logits = model(**tok(p, return_tensors="pt", padding=True, truncation=True))
            row = logits.logits.numpy()[0]
        e = np.exp(row - row.max())
        return float(1 - (e / e.sum())[-2:].sum())

    for p in warm:
        rate(p)
    runs = {}
    for c in callers:

        async def drive(c: int = c) -> tuple[float, list[float]]:
            lat: list[float] = []

            async def client(k: int) -> None:
                for p in prompts[k::c]:
                    t = time.perf_counter()
                    await asyncio.sleep(0)
                    rate(p)  # on the loop, as RouteLLM's server does
                    lat.append(time.perf_counter() - t)

            t0 = time.perf_counter()
            await asyncio.gather(*(client(k) for k in range(c)))
            return time.perf_counter() - t0, lat

        wall, lat = asyncio.run(drive())
        runs[str(c)] = {
            "callers": c,
            "throughput_per_s": len(prompts) / wall,
            "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * pct(lat, 0.99),
        }
    return {"label": "RouteLLM-equivalent (in-process torch fp32 sdpa, serial)", "runs": runs}


# --- our classifier ---


async def drive(clf: Any, prompts: list[str], callers: int) -> tuple[float, list[float], list[Any]]:
    lat = [0.0] * len(prompts)
    scores: list[Any] = [None] * len(prompts)

    async def client(k: int) -> None:
        for i in range(k, len(prompts), callers):
            t = time.perf_counter()
            [scores[i]] = await clf.classify([prompts[i]])
            lat[i] = time.perf_counter() - t

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(callers)))
    return time.perf_counter() - t0, lat, scores


def ours(
    name: str, checkpoint: Path, prompts: list[str], warm: list[str], callers: list[int]
) -> dict[str, Any]:
    from classifier.local import LocalClassifier
    from classifier.settings import ClassifierSettings

    dtype, runtime = CONFIGS[name]
    settings = ClassifierSettings(
        model=str(checkpoint),
        dtype=dtype,  # type: ignore[arg-type]
        runtime=runtime,  # type: ignore[arg-type]
        device="cpu",
        cache_size=0,
        onnx_cache_dir=str(ONNX_CACHE),
    )
    t = time.perf_counter()
    clf = LocalClassifier.load(settings)
    load_s = time.perf_counter() - t
    result: dict[str, Any] = {"runtime": clf.runtime, "load_s": load_s, "runs": {}}

    async def run_all() -> None:
        for p in warm:
            await clf.classify([p])
        for c in callers:
            passes = clf.batcher.stats.forward_passes
            wall, lat, scores = await drive(clf, prompts, c)
            result["runs"][str(c)] = {
                "callers": c,
                "throughput_per_s": len(prompts) / wall,
                "p50_ms": 1000 * statistics.median(lat),
                "p99_ms": 1000 * pct(lat, 0.99),
                "passes": clf.batcher.stats.forward_passes - passes,
                "lat": lat,
            }
            result.setdefault("p_strong", [s.get("LABEL_0") for s in scores])
            p50 = 1000 * statistics.median(lat)
            log(f"  {name} callers={c}: {len(prompts) / wall:.2f}/s, p50 {p50:.0f} ms")
        await clf.aclose()

    asyncio.run(run_all())
    return result


# --- report ---


def agreement(ref: list[float], other: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"max_dp": max(abs(a - b) for a, b in zip(ref, other, strict=True))}
    for share in (0.25, 0.5, 0.75):
        t = pct(ref, 1 - share)
        same = sum((a >= t) == (b >= t) for a, b in zip(ref, other, strict=True))
        out[f"{int(share * 100)}%"] = same / len(ref)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=64, help="prompts per run (default 64)")
    ap.add_argument("--callers", default="1,4,16")
    ap.add_argument("--dtypes", default=",".join(CONFIGS), help=f"from {','.join(CONFIGS)}")
    ap.add_argument(
        "--bf16-callers",
        default="16",
        help="caller counts for bfloat16, which is ~8x slower on AVX2-only CPUs (default 16)",
    )
    ap.add_argument("--quick", action="store_true", help="24 prompts, callers 1,16, no torch refs")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.prompts, args.callers, args.dtypes = 24, "1,16", "float32,bfloat16,int8"
    callers = [int(c) for c in args.callers.split(",")]
    names = [d for d in args.dtypes.split(",") if d]
    unknown = set(names) - set(CONFIGS)
    if unknown:
        ap.error(f"unknown --dtypes {sorted(unknown)}: use {','.join(CONFIGS)}")
    bf16_callers = [c for c in map(int, args.bf16_callers.split(",")) if c in callers] or callers
    command = shlex.join([".venv/bin/python", "bench/classifier_bench.py", *sys.argv[1:]])
    print(f"command: `{command}`\n", flush=True)

    import torch

    from bench.prompts import make_prompts, summary

    started = time.perf_counter()
    checkpoint = ensure_checkpoints()
    prompts, counts = make_prompts(args.prompts + 4, checkpoint=checkpoint)
    warm, prompts, counts = prompts[args.prompts :], prompts[: args.prompts], counts[: args.prompts]
    print(f"prompts: {json.dumps(summary(counts))}")
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}\n", flush=True)

    base = None if args.no_baseline else routellm(checkpoint, args.prompts, callers)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        log(f"{name} ...")
        cs = bf16_callers if name == "bfloat16" else callers
        results[name] = ours(name, checkpoint, prompts, warm, cs)

    print(
        "| configuration | runtime | callers | prompts/s | × RouteLLM | p50 ms | p50 × RouteLLM "
        "| p99 ms |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    if base:
        for c in callers:
            r = base["runs"][str(c)]
            print(
                f"| {base['label']} | torch fp32 | {c} | {r['throughput_per_s']:.2f} | 1.00 "
                f"| {r['p50_ms']:.0f} | 1.00 | {r['p99_ms']:.0f} |"
            )
    for name, res in results.items():
        for c, r in res["runs"].items():
            b = base["runs"].get(c) if base else None
            x = f"{r['throughput_per_s'] / b['throughput_per_s']:.2f}" if b else "-"
            xp = f"{r['p50_ms'] / b['p50_ms']:.2f}" if b else "-"
            print(
                f"| ours {name} | {res['runtime']} | {c} | {r['throughput_per_s']:.2f} | {x} "
                f"| {r['p50_ms']:.0f} | {xp} | {r['p99_ms']:.0f} |"
            )

    ref = results.get("float32", {}).get("p_strong")
    if ref:
        print(
            "\nDecision agreement with our float32 (P(LABEL_0) thresholds routing 25/50/75 % "
            "of the prompts to the strong model):\n"
        )
        print("| configuration | 25 % strong | 50 % strong | 75 % strong | max abs ΔP(LABEL_0) |")
        print("|---|---:|---:|---:|---:|")
        for name, res in results.items():
            if name == "float32":
                continue
            a = agreement(ref, res["p_strong"])
            print(
                f"| {name} | {a['25%']:.1%} | {a['50%']:.1%} | {a['75%']:.1%} | {a['max_dp']:.2g} |"
            )
        print(
            f"\nP(LABEL_0) under float32: min {min(ref):.3f}, p50 {statistics.median(ref):.3f},"
            f" max {max(ref):.3f}"
        )

    print(
        "\nWhere the time goes: mean latency per prompt (ms) by token-length bucket, 1 caller "
        "(one forward pass per prompt):\n"
    )
    print("| configuration | " + " | ".join(label for _, _, label in BUCKETS) + " | load s |")
    print("|---|" + "---:|" * (len(BUCKETS) + 1))
    for name, res in results.items():
        run = res["runs"].get("1")
        if not run:
            continue
        cells = []
        for lo, hi, _ in BUCKETS:
            xs = [t for t, n in zip(run["lat"], counts, strict=True) if lo <= n <= hi]
            cells.append(f"{1000 * statistics.mean(xs):.0f}" if xs else "-")
        print(f"| ours {name} | " + " | ".join(cells) + f" | {res['load_s']:.1f} |")
    top = max(callers)
    print(
        f"\nForward passes at {top} callers (length grouping): "
        + ", ".join(
            f"{n} {r['runs'][str(top)]['passes']}"
            for n, r in results.items()
            if str(top) in r["runs"]
        )
        + f" for {len(prompts)} prompts"
    )
    print(f"\nbench wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
