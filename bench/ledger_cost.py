"""What accounting costs the proxy: throughput at 16 streaming clients with the decision ledger
on (a SQLite file) against `ROUTELLM_LEDGER=off`, the same fake upstream behind both.

    .venv/bin/python bench/ledger_cost.py [--requests 400] [--rounds 3]

Both gateways are real `routellm-gateway` processes on 127.0.0.1 serving a model by name (no
classification). Metrics (prometheus-client) are on in both: they have no switch, so what this
measures is the ledger; the metrics' own cost is inside both figures. Rounds alternate between
the two so that machine drift spreads over both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway_overhead import measure, pct  # noqa: E402
from bench.soak import (  # noqa: E402
    free_port,
    start_gateway,
    start_upstream,
    stop,
    wait_http,
    write_config,
)
from classifier.synthetic import build_checkpoint  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ledger-cost-"))
    up_port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        upstream = start_upstream(up_port)
        procs.append(upstream)
        up = f"http://127.0.0.1:{up_port}"
        write_config(tmp / "gateway.yaml", up)
        checkpoint = build_checkpoint(tmp / "bert", winning_label=2)
        gateways = {}
        for name, ledger in (("ledger on", str(tmp / "ledger.sqlite3")), ("ledger off", "off")):
            port = free_port()
            env = {
                **os.environ,
                "ROUTELLM_BERT_MODEL": str(checkpoint),
                "ROUTELLM_BERT_CACHE_DIR": str(tmp / "onnx"),
                "ROUTELLM_LEDGER": ledger,
            }
            proc = start_gateway(port, tmp / "gateway.yaml", env)
            procs.append(proc)
            gateways[name] = f"http://127.0.0.1:{port}"
            wait_http(f"{gateways[name]}/health", proc, name, 180)
        wait_http(f"{up}/_stats", upstream, "fake upstream", 60)
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in gateways}
        for url in gateways.values():
            asyncio.run(measure(url, "strong", True, 100, 16))  # warm-up
        for _ in range(args.rounds):
            for name, url in gateways.items():
                lat = asyncio.run(measure(url, "strong", True, args.requests, 16))
                wall = -lat.pop()
                results[name].append((len(lat) / wall, pct(lat, 0.5), pct(lat, 0.99)))
        print(f"{'gateway':<11} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}   (16 streaming clients)")
        means = {}
        for name, rows in results.items():
            means[name] = [sum(col) / len(col) for col in zip(*rows, strict=True)]
            rps, p50, p99 = means[name]
            print(f"{name:<11} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f}")
        ratio = means["ledger on"][0] / means["ledger off"][0]
        print(
            f"# ledger on / off throughput: {ratio:.2f}x ({args.rounds} rounds x {args.requests})"
        )
    finally:
        for proc in reversed(procs):
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
