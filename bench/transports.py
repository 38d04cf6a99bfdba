"""The upstream client, side by side: the same gateway with httpx's own pool (httpcore), httpx's
pool tuned (fewer keep-alive connections), and httpx over aiohttp's pool (`httpx-aiohttp`, what
the gateway uses), at 16 streaming clients against one fake upstream, model named directly.

    .venv/bin/python bench/transports.py [--requests 600] [--rounds 3]

Every server is its own process on 127.0.0.1; rounds alternate between the gateways so machine
drift spreads over all of them. The load generator shares the machine's cores with them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway_overhead import measure, pct  # noqa: E402
from bench.soak import free_port, start_upstream, stop, wait_http, write_config  # noqa: E402
from classifier.synthetic import build_checkpoint  # noqa: E402

TRANSPORTS = ("httpx", "httpx-tuned", "aiohttp")


def transport(name: str) -> httpx.AsyncBaseTransport:
    if name == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=httpx.Limits(max_connections=None), trust_env=False)
    keepalive = 16 if name == "httpx-tuned" else 256
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=keepalive)
    return httpx.AsyncHTTPTransport(limits=limits, retries=0)


def serve(port: int, name: str) -> None:
    import uvicorn

    from gateway.app import create_app
    from gateway.settings.load import from_environment

    app = create_app(from_environment(), transport=transport(name))
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="error"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="transports-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up_port = free_port()
        upstream = start_upstream(up_port)
        procs.append(upstream)
        up = f"http://127.0.0.1:{up_port}"
        wait_http(f"{up}/_stats", upstream, "fake upstream", 60)
        write_config(tmp / "gateway.yaml", up)
        env = {
            **os.environ,
            "ROUTELLM_CONFIG": str(tmp / "gateway.yaml"),
            "ROUTELLM_BERT_MODEL": str(build_checkpoint(tmp / "bert", winning_label=2)),
            "ROUTELLM_BERT_CACHE_DIR": str(tmp / "onnx"),
            "ROUTELLM_LEDGER": str(tmp / "ledger.sqlite3"),
        }
        targets = {"upstream alone": (up, "ok:strong")}
        for name in TRANSPORTS:
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, __file__, "--serve", str(port), name], env=env, cwd=ROOT
            )
            procs.append(proc)
            wait_http(f"http://127.0.0.1:{port}/health", proc, name, 180)
            targets[name] = (f"http://127.0.0.1:{port}", "strong")
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in targets}
        for url, model in targets.values():
            asyncio.run(measure(url, model, True, 100, 16))  # warm-up
        for _ in range(args.rounds):
            for name, (url, model) in targets.items():
                lat = asyncio.run(measure(url, model, True, args.requests, 16))
                wall = -lat.pop()
                results[name].append((len(lat) / wall, pct(lat, 0.5), pct(lat, 0.99)))
        alone = sum(r[0] for r in results["upstream alone"]) / args.rounds
        print(f"{'upstream client':<16} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'x alone':>8}")
        for name, rows in results.items():
            rps, p50, p99 = (sum(col) / len(col) for col in zip(*rows, strict=True))
            print(f"{name:<16} {rps:>7.0f} {p50:>7.1f} {p99:>7.1f} {rps / alone:>8.2f}")
        print(f"# 16 streaming clients, {args.rounds} rounds x {args.requests} requests each")
    finally:
        for proc in reversed(procs):
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
