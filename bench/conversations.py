"""What conversation state costs: the same routed traffic through a gateway that keeps it in
Redis and one that keeps it in its own memory, at 16 concurrent clients.

    .venv/bin/python bench/conversations.py [--requests 800]

Real processes on 127.0.0.1: the fake upstream from `bench/soak.py`, a local `redis-server`
(no persistence), and the real `routellm-gateway` twice (`ROUTELLM_REDIS_URL` set or not) on a
tiny generated checkpoint. Each client keeps one conversation (its own
`x-routellm-conversation`), so every request reads and writes its state. Also printed: the
Redis get+put alone, at 16 concurrent tasks. Everything shares the same CPU: figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
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
from gateway.routing.state import MemoryStore, RedisStore, Store  # noqa: E402
from tests.gateway.scripted import RedisServer  # noqa: E402

CLIENTS = 16
MODEL = "router-bert-0.5"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def through_gateway(url: str, n: int) -> tuple[float, list[float]]:
    """(requests/s, latencies) for `n` routed requests from CLIENTS clients."""
    latencies: list[float] = []
    todo = iter(range(n))

    async def client(number: int) -> None:
        headers = {"x-routellm-conversation": f"bench-{number}-{time.monotonic_ns()}"}
        async with httpx.AsyncClient(timeout=30, headers=headers) as http:
            for _ in todo:
                body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
                started = time.perf_counter()
                response = await http.post(f"{url}/v1/chat/completions", json=body)
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return n / (time.perf_counter() - started), latencies


async def store_alone(store: Store, n: int) -> list[float]:
    """Latencies of one turn's store work (get, then put) from CLIENTS concurrent tasks."""
    latencies: list[float] = []
    todo = iter(range(n))

    async def task(number: int) -> None:
        for _ in todo:
            started = time.perf_counter()
            await store.get("bench", str(number))
            await store.put("bench", str(number), {"model": "strong", "win_rate": 0.9}, 60)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(task(i) for i in range(CLIENTS)))
    await store.aclose()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=800)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="conversations-"))
    up_port = free_port()
    redis = RedisServer(tmp)
    redis_url = redis.url
    procs: list[subprocess.Popen[bytes]] = []
    try:
        redis.start()
        upstream = start_upstream(up_port)
        procs.append(upstream)
        up = f"http://127.0.0.1:{up_port}"
        write_config(tmp / "gateway.yaml", up)
        checkpoint = build_checkpoint(tmp / "bert", winning_label=0)
        gateways = {}
        for name, extra in (("memory", {}), ("redis", {"ROUTELLM_REDIS_URL": redis_url})):
            port = free_port()
            env = {
                **os.environ,
                **extra,
                "ROUTELLM_BERT_MODEL": str(checkpoint),
                "ROUTELLM_BERT_CACHE_DIR": str(tmp / "onnx"),
                "ROUTELLM_LOG_FORMAT": "json",
            }
            proc = start_gateway(port, tmp / "gateway.yaml", env)
            procs.append(proc)
            gateways[name] = (f"http://127.0.0.1:{port}", proc)
        wait_http(f"{up}/_stats", upstream, "fake upstream", 60)
        for url, proc in gateways.values():
            wait_http(f"{url}/health", proc, "gateway", 120)

        print(f"{'state':<8} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        rows = {}
        for name, (url, _) in gateways.items():
            asyncio.run(through_gateway(url, 100))  # warm-up
            rate, lat = asyncio.run(through_gateway(url, args.requests))
            rows[name] = (rate, pct(lat, 0.5), pct(lat, 0.99))
            print(
                f"{name:<8} {CLIENTS:>7} {rate:>8.0f} {rows[name][1]:>8.2f} {rows[name][2]:>8.2f}"
            )
        failures = [
            line
            for line in httpx.get(f"{gateways['redis'][0]}/metrics").text.splitlines()
            if line.startswith("routellm_conversation_store_failures_total")
        ]
        print(f"# redis gateway: {failures[0]} (turns decided alone: Redis over its timeout)")
        added = [rows["redis"][i] - rows["memory"][i] for i in (1, 2)]
        print(f"{'added':<8} {CLIENTS:>7} {'':>8} {added[0]:>8.2f} {added[1]:>8.2f}")
        print(f"\n{'store':<8} {'tasks':>7} {'':>8} {'p50 ms':>8} {'p99 ms':>8}  (get + put)")
        for name, store in (("memory", MemoryStore()), ("redis", RedisStore(redis_url, 1.0))):
            lat = asyncio.run(store_alone(store, args.requests))
            print(f"{name:<8} {CLIENTS:>7} {'':>8} {pct(lat, 0.5):>8.3f} {pct(lat, 0.99):>8.3f}")
        print(f"# {args.requests} requests per row; Redis, gateways and upstream share the CPU")
    finally:
        for proc in reversed(procs):
            stop(proc)
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
