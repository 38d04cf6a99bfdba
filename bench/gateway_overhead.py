"""What the gateway adds to a request, classifier aside: latency through the gateway minus
latency straight to the same fake upstream, at 1 and 16 concurrent clients.

    .venv/bin/python bench/gateway_overhead.py [--requests 400]

Both servers are real processes on 127.0.0.1 (the fake upstream from `tests/gateway`, the real
`routellm-gateway`); the gateway serves the model by name (reason `direct`), so no classification
happens. Non-stream and stream (4 chunks + [DONE]) are measured separately.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.soak import (  # noqa: E402
    free_port,
    start_gateway,
    start_upstream,
    stop,
    wait_http,
    write_config,
)
from classifier.synthetic import build_checkpoint  # noqa: E402

HI = [{"role": "user", "content": "hello"}]


async def measure(url: str, model: str, stream: bool, n: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    todo = iter(range(n))

    async def worker() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in todo:
                body = {"model": model, "messages": HI, "stream": stream}
                started = time.perf_counter()
                response = await client.post(f"{url}/v1/chat/completions", json=body)
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.append(-(time.perf_counter() - started))  # wall time, popped by the caller
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="overhead-"))
    up_port, gw_port = free_port(), free_port()
    upstream = gateway = None
    try:
        upstream = start_upstream(up_port)
        up = f"http://127.0.0.1:{up_port}"
        write_config(tmp / "gateway.yaml", up)
        checkpoint = build_checkpoint(tmp / "bert", winning_label=2)
        env = {
            **os.environ,
            "ROUTELLM_BERT_MODEL": str(checkpoint),
            "ROUTELLM_BERT_CACHE_DIR": str(tmp / "onnx"),
            "ROUTELLM_LOG_FORMAT": "json",
        }
        gateway = start_gateway(gw_port, tmp / "gateway.yaml", env)
        gw = f"http://127.0.0.1:{gw_port}"
        wait_http(f"{up}/_stats", upstream, "fake upstream", 60)
        wait_http(f"{gw}/health", gateway, "gateway", 120)
        print(f"{'path':<8} {'mode':<10} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        for concurrency in (1, 16):
            for stream in (False, True):
                rows = {}
                for name, url, model in (("direct", up, "ok:strong"), ("gateway", gw, "strong")):
                    asyncio.run(measure(url, model, stream, 50, concurrency))  # warm-up
                    lat = asyncio.run(measure(url, model, stream, args.requests, concurrency))
                    wall = -lat.pop()
                    rows[name] = (len(lat) / wall, pct(lat, 0.5), pct(lat, 0.99))
                    mode = "stream" if stream else "json"
                    print(
                        f"{name:<8} {mode:<10} {concurrency:>7} {rows[name][0]:>8.0f} "
                        f"{rows[name][1]:>8.2f} {rows[name][2]:>8.2f}"
                    )
                added = rows["gateway"][1] - rows["direct"][1]
                print(f"{'':<8} {'overhead':<10} {concurrency:>7} {'':>8} {added:>8.2f}")
        print(f"# {args.requests} requests per row; gateway and upstream share the same CPU")
    finally:
        stop(gateway)
        stop(upstream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
