"""What a candidate router in shadow mode costs: routed throughput and latency with a shadow
candidate (a second checkpoint classifying every request) against the same gateway without one.

    .venv/bin/python bench/candidate_cost.py [--requests 400] [--hidden 384 --layers 6]

Real processes on 127.0.0.1: the fake upstream from `tests/gateway` and `routellm-gateway`
twice, on the same generated XLM-RoBERTa checkpoints (two of the given size, different weights):
first `router` alone, then `router` with `candidate: {router: challenger, mode: shadow}`, the
challenger on the second checkpoint. Every request is a distinct prompt (no classifier cache
hit) for `router`, streamed, at 1 and 16 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.soak import free_port, start_gateway, start_upstream, stop, wait_http  # noqa: E402
from classifier.cpu import detect_cpu_features  # noqa: E402
from classifier.synthetic import build_checkpoint, corpus  # noqa: E402


def config(path: Path, upstream: str, candidate: Path | None) -> Path:
    rule = {"strong": "strong", "weak": "weak", "threshold": 0.5}
    doc: dict[str, Any] = {
        "upstreams": {"fake": {"base_url": f"{upstream}/v1"}},
        "models": {"strong": {"upstream": "fake", "model": "ok:strong"},
                   "weak": {"upstream": "fake", "model": "ok:weak"}},
        "routing": dict(rule),
    }  # fmt: skip
    if candidate is not None:
        doc["routing"]["candidate"] = {"router": "challenger", "mode": "shadow"}
        doc["routers"] = {"challenger": {**rule, "classifier": str(candidate)}}
    path.write_text(yaml.safe_dump(doc))
    return path


async def load(url: str, prompts: list[str], concurrency: int) -> tuple[float, list[float]]:
    queue = list(prompts)
    latencies: list[float] = []

    async def client() -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            while queue:
                text = queue.pop()
                body = {"model": "router", "stream": True,
                        "messages": [{"role": "user", "content": text}]}  # fmt: skip
                started = time.perf_counter()
                async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as answer:
                    answer.raise_for_status()
                    async for _ in answer.aiter_bytes():
                        pass
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return len(prompts) / (time.perf_counter() - started), latencies


def p50(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--layers", type=int, default=6)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="candidate-cost-"))
    incumbent = build_checkpoint(tmp / "incumbent", hidden=args.hidden, layers=args.layers)
    challenger = build_checkpoint(
        tmp / "challenger", hidden=args.hidden, layers=args.layers, seed=1
    )
    prompts = corpus(n=4 * args.requests + 64, seed=3)
    up_port = free_port()
    upstream = start_upstream(up_port)
    up = f"http://127.0.0.1:{up_port}"
    results = []
    try:
        wait_http(f"{up}/_stats", upstream, "fake upstream", 60)
        for name, candidate in (("no candidate", None), ("shadow candidate", challenger)):
            port = free_port()
            env = {
                **os.environ,
                "ROUTELLM_BERT_MODEL": str(incumbent),
                "ROUTELLM_BERT_CACHE_DIR": str(tmp / "onnx"),
                "ROUTELLM_BERT_DEVICE": "cpu",
                "ROUTELLM_LEDGER": "off",
            }
            gateway = start_gateway(port, config(tmp / f"{port}.yaml", up, candidate), env)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_http(f"{url}/health", gateway, "gateway", 300)
                asyncio.run(load(url, prompts[:32], 4))  # warm-up
                for i, clients in enumerate((1, 16)):
                    chunk = prompts[64 + i * args.requests : 64 + (i + 1) * args.requests]
                    rate, latencies = asyncio.run(load(url, chunk, clients))
                    results.append((name, clients, rate, p50(latencies)))
            finally:
                stop(gateway)
    finally:
        stop(upstream)
    cpu = detect_cpu_features()
    print(f"CPU: {cpu.model or 'unknown'}, {os.cpu_count()} cores; flags: {cpu.describe()}")
    print(
        f"checkpoints: hidden {args.hidden}, {args.layers} layers; {args.requests} requests a row"
    )
    print("| gateway | clients | req/s | p50 ms |\n|---|---:|---:|---:|")
    for name, clients, rate, median in results:
        print(f"| {name} | {clients} | {rate:.1f} | {median:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
