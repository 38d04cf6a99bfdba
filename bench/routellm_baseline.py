"""Baseline: RouteLLM's own `BERTRouter` on the shared prompt set (bench/prompts.py).

Run it with the RouteLLM venv's python, NOT the project's venv (RouteLLM pins its own deps):

    python3 -m venv /work/routellm-venv
    /work/routellm-venv/bin/pip install 'routellm[serve]==0.2.0' torch==2.13.0
    /work/routellm-venv/bin/python bench/routellm_baseline.py [--n 128] [--callers 1,4,16]

`BERTRouter(checkpoint_path)` calls `AutoModelForSequenceClassification.from_pretrained(path)` and
`AutoTokenizer.from_pretrained(path)`, so passing the local base-size checkpoint directory
(bench/.cache/bert-base, built by `classifier.synthetic.build_checkpoint(..., hidden=768,
layers=12, vocab=250002)`) loads it with no hub access. Each `calculate_strong_win_rate(prompt)`
is one float32 forward pass of one prompt (unpadded).

Concurrency is driven the way `routellm.openai_server` drives it: the FastAPI handler is
`async def`, and `Controller.acompletion` calls `router.route()` -> `calculate_strong_win_rate()`
synchronously on the event loop, so concurrent requests are serialised. Here C asyncio callers
each await such a handler over their share of the prompts; throughput therefore does not grow with
C (it only adds queueing to each caller's latency).

Prints progress to stderr and one JSON object on its last stdout line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# routellm.routers.routers imports similarity_weighted.utils, which builds an OpenAI() client at
# import time and raises without a key; no request is ever sent. Hub access is never needed.
os.environ.setdefault("OPENAI_API_KEY", "unused-benchmark-key")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def drive(router, prompts: list[str], callers: int) -> tuple[float, list[float]]:
    """`callers` closed-loop clients; the handler blocks the loop exactly as RouteLLM's server."""

    async def handler(prompt: str) -> float:
        return router.calculate_strong_win_rate(prompt)  # sync, on the event loop

    latencies: list[float] = []

    async def client(k: int) -> None:
        for p in prompts[k::callers]:
            t = time.perf_counter()  # request "sent"
            await asyncio.sleep(0)  # in flight: other callers' handlers may run (queueing)
            await handler(p)
            latencies.append(time.perf_counter() - t)  # includes time queued behind others

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(callers)))
    return time.perf_counter() - t0, latencies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=str(ROOT / "bench" / ".cache" / "bert-base"))
    ap.add_argument("--n", type=int, default=128, help="prompts per run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--callers", default="1,4,16")
    ap.add_argument("--warmup", type=int, default=4)
    args = ap.parse_args()

    import torch
    import transformers
    from routellm.routers.routers import BERTRouter

    from bench.prompts import make_prompts, summary

    prompts, counts = make_prompts(args.n + args.warmup, args.seed, args.checkpoint)
    warm, prompts, counts = prompts[args.n :], prompts[: args.n], counts[: args.n]

    t = time.perf_counter()
    router = BERTRouter(checkpoint_path=args.checkpoint)
    load_s = time.perf_counter() - t
    for p in warm:
        router.calculate_strong_win_rate(p)

    result: dict = {
        "system": "routellm.BERTRouter",
        "routellm": __import__("importlib.metadata").metadata.version("routellm"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "attn_implementation": getattr(router.model.config, "_attn_implementation", None),
        "dtype": str(next(router.model.parameters()).dtype),
        "python": platform.python_version(),
        "checkpoint": args.checkpoint,
        "prompts": summary(counts),
        "load_s": round(load_s, 2),
        "runs": {},
    }
    for c in [int(x) for x in args.callers.split(",")]:
        wall, lat = asyncio.run(drive(router, prompts, c))
        run = {
            "callers": c,
            "throughput_per_s": round(len(prompts) / wall, 3),
            "wall_s": round(wall, 2),
            "p50_ms": round(1000 * statistics.median(lat), 1),
            "p99_ms": round(1000 * pct(lat, 0.99), 1),
        }
        result["runs"][str(c)] = run
        print(json.dumps(run), file=sys.stderr, flush=True)
    one = result["runs"].get("1")
    if one:
        result["single_caller_p50_ms"] = one["p50_ms"]
        result["single_caller_p99_ms"] = one["p99_ms"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
