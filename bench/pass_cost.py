"""What one forward pass of the classifier costs, and how fast the classifier alone could go.

    .venv/bin/python bench/pass_cost.py                      # float32 and int8, about 2 minutes
    .venv/bin/python bench/pass_cost.py --dtypes float32 --threads 1,2

Two measures on the base-size checkpoint (bench/.cache/bert-base-spread, exported into
bench/.cache/onnx exactly as the gateway does, by `LocalClassifier.load`):

- **the cost model**: the median time of one pass over rows x tokens (1 to 8 rows of 8 to 256
  tokens, random ids, no padding), fitted (least relative error) to a fixed cost per pass plus a
  cost per token. The fixed cost in tokens is what `classifier.batching`'s `_PASS_COST_TOKENS`
  stands for; the per-token cost, against the model's multiply-adds, gives the arithmetic rate.
- **the ceiling**: bench/compare.py's own prompts (the same seed and count), 16 at a time as its
  16 clients send them, planned into passes by the package's `plan_passes` and run one after
  another with `LocalClassifier.predict` on this thread: no HTTP, no event loop, no batching
  window. Prompts/s here bound what any server around this classifier can route on this CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.classifier_bench import ONNX_CACHE, ensure_checkpoints, log  # noqa: E402

TOKENS = (8, 16, 32, 64, 128, 256)
ROWS = (1, 2, 4, 8)
MAX_GRID_TOKENS = 1024
CLIENTS = 16
COMPARE_SEED = 7


def load(checkpoint: Path, dtype: str, threads: int) -> Any:
    from classifier.local import LocalClassifier
    from classifier.settings import ClassifierSettings

    settings = ClassifierSettings(
        model=str(checkpoint),
        dtype=dtype,  # type: ignore[arg-type]
        device="cpu",
        threads=threads,
        cache_size=0,
        onnx_cache_dir=str(ONNX_CACHE),
    )
    return LocalClassifier.load(settings)


def pass_ms(clf: Any, rows: int, tokens: int, repeats: int) -> float:
    rng = np.random.default_rng(rows * 1000 + tokens)
    ids = rng.integers(5, 30_000, size=(rows, tokens), dtype=np.int64)
    mask = np.ones_like(ids)
    clf.runner.logits(ids, mask)  # shapes new to the session allocate once
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        clf.runner.logits(ids, mask)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def multiply_adds_per_token(checkpoint: Path) -> int:
    """The encoder's linear layers per token: 4 H^2 (attention) + 2 H I (feed-forward) a layer."""
    import json

    config = json.loads((checkpoint / "config.json").read_text())
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    return int(config["num_hidden_layers"] * (4 * hidden * hidden + 2 * hidden * inner))


def ceiling(clf: Any, prompts: list[str], counts: list[int]) -> float:
    # the batcher's own cost model, so the plan is the one the gateway makes
    from classifier.batching import _MAX_PASS_TOKENS, _PASS_COST_TOKENS, plan_passes

    started = time.perf_counter()
    for start in range(0, len(prompts), CLIENTS):
        texts, sizes = prompts[start : start + CLIENTS], counts[start : start + CLIENTS]
        for indices in plan_passes(sizes, pass_cost=_PASS_COST_TOKENS, max_tokens=_MAX_PASS_TOKENS):
            clf.predict([texts[i] for i in indices])
    return len(prompts) / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtypes", default="float32,int8")
    ap.add_argument("--threads", default="2", help="intra-op threads to try, e.g. 1,2")
    ap.add_argument("--repeats", type=int, default=7, help="passes timed per grid cell")
    ap.add_argument(
        "--requests", type=int, default=96, help="bench/compare.py's --requests (its prompts)"
    )
    args = ap.parse_args()
    command = shlex.join([".venv/bin/python", "bench/pass_cost.py", *sys.argv[1:]])
    print(f"command: `{command}`\n", flush=True)

    from bench.prompts import make_prompts
    from classifier.cpu import detect_cpu_features

    checkpoint = ensure_checkpoints()
    prompts, counts = make_prompts(args.requests * 3 + 16, seed=COMPARE_SEED, checkpoint=checkpoint)
    macs = multiply_adds_per_token(checkpoint)
    print(f"CPU: {detect_cpu_features().describe()}")
    print(f"compare.py's prompts: {len(prompts)}, {sum(counts)} tokens, mean {np.mean(counts):.1f}")
    fits: list[str] = []
    for dtype in args.dtypes.split(","):
        for threads in (int(t) for t in args.threads.split(",")):
            log(f"{dtype}, {threads} threads ...")
            clf = load(checkpoint, dtype, threads)
            grid = {
                (r, t): pass_ms(clf, r, t, args.repeats)
                for t in TOKENS
                for r in ROWS
                if r * t <= MAX_GRID_TOKENS
            }
            rate = ceiling(clf, prompts, counts)
            asyncio.run(clf.aclose())  # its worker thread holds it: free it before the next
            print(f"\n{dtype}, {threads} threads: ms per pass (rows across, tokens down)\n")
            print("| tokens | " + " | ".join(f"{r} rows" for r in ROWS) + " |")
            print("|---:|" + "---:|" * len(ROWS))
            for t in TOKENS:
                cells = [f"{grid[r, t]:.1f}" if (r, t) in grid else "-" for r in ROWS]
                print(f"| {t} | " + " | ".join(cells) + " |")
            # least relative error: the small passes, where the fixed cost shows, count as much
            measured = np.array(list(grid.values()))
            design = np.array([[1.0, r * t] for r, t in grid]) / measured[:, None]
            fixed, per_token = np.linalg.lstsq(design, np.ones(len(grid)), rcond=None)[0]
            gflops = 2 * macs / (per_token / 1000) / 1e9
            fits.append(
                f"| {dtype} | {threads} | {fixed:.1f} | {1000 * per_token:.0f} "
                f"| {fixed / per_token:.0f} | {gflops:.0f} | {rate:.1f} |"
            )
    print(
        "\nFitted: ms per pass = fixed + per token x rows x tokens. GFLOP/s counts the encoder's "
        "linear layers only (2 x multiply-adds per token); the ceiling runs compare.py's prompts, "
        f"{CLIENTS} at a time, through the package's plan with nothing else:\n"
    )
    print(
        "| dtype | threads | fixed ms | µs per token | fixed, in tokens | GFLOP/s "
        "| ceiling prompts/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(fits))


if __name__ == "__main__":
    main()
