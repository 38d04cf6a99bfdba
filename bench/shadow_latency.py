"""What shadow judging costs the client: latency of routed requests with `quality.shadow_share`
at 0.05 (the suggested share) and at 1.0 (every request judged in the background: one shadow
call and one judge call each) against the same gateway with shadowing off.

    .venv/bin/python bench/shadow_latency.py [--requests 200] [--rounds 3] [--shares 0.05,1]

All servers are real processes on 127.0.0.1: the fake upstream from `tests/gateway` (strong,
weak and a scripted judge), and one `routellm-gateway` per share, identical but for the
`quality:` section, each with a tiny generated classifier in-process. Measurements alternate
between the two gateways, round after round, so that drift on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway_overhead import measure, pct  # noqa: E402
from bench.soak import free_port, start_gateway, start_upstream, stop, wait_http  # noqa: E402
from classifier.synthetic import build_checkpoint  # noqa: E402

PRICE = {"input": 1.0, "output": 2.0}


def write_config(path: Path, upstream: str, shadow_share: float) -> None:
    doc: dict[str, Any] = {
        "upstreams": {"fake": {"base_url": f"{upstream}/v1"}},
        "models": {
            name: {"upstream": "fake", "model": model, "price": PRICE}
            for name, model in (("strong", "ok:strong"), ("weak", "ok:weak"), ("judge", "judge"))
        },
        "routing": {"strong": "strong", "weak": "weak", "threshold": 0.5},
    }
    if shadow_share:
        doc["quality"] = {
            "shadow_share": shadow_share,
            "judge": "judge",
            "daily_budget_usd": 1000.0,
            "concurrency": 64,
        }
    path.write_text(yaml.safe_dump(doc))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="per gateway, mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shares", default="0.05,1", help="shadow shares to compare with off")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="shadow-bench-"))
    up_port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        upstream = start_upstream(up_port)
        procs.append(upstream)
        up = f"http://127.0.0.1:{up_port}"
        checkpoint = build_checkpoint(tmp / "bert", winning_label=2)
        urls: dict[str, str] = {}
        shares = [("off", 0.0)] + [(f"{float(s):g}", float(s)) for s in args.shares.split(",")]
        for name, share in shares:
            port = free_port()
            write_config(tmp / f"{name}.yaml", up, share)
            env = {
                **os.environ,
                "ROUTELLM_BERT_MODEL": str(checkpoint),
                "ROUTELLM_BERT_CACHE_DIR": str(tmp / "onnx"),
                "ROUTELLM_LEDGER": str(tmp / f"{name}.sqlite3"),
            }
            procs.append(start_gateway(port, tmp / f"{name}.yaml", env))
            urls[name] = f"http://127.0.0.1:{port}"
        wait_http(f"{up}/_stats", upstream, "fake upstream", 60)
        for name, proc in zip(urls, procs[1:], strict=True):
            wait_http(f"{urls[name]}/health", proc, f"gateway ({name})", 120)
        print(
            f"{'shadow':<7} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
        )
        for concurrency in (1, 8):
            samples: dict[str, list[float]] = {name: [] for name in urls}
            walls = dict.fromkeys(samples, 0.0)
            for url in urls.values():  # warm-up
                asyncio.run(measure(url, "router", False, 30, concurrency))
            for _ in range(args.rounds):
                for name, url in urls.items():
                    lat = asyncio.run(measure(url, "router", False, args.requests, concurrency))
                    walls[name] += -lat.pop()
                    samples[name] += lat
            for name, lat in samples.items():
                print(
                    f"{name:<7} {concurrency:>7} {len(lat) / walls[name]:>8.0f} "
                    f"{pct(lat, 0.5):>8.2f} {pct(lat, 0.9):>8.2f} {pct(lat, 0.99):>8.2f}"
                )
        for name in list(urls)[1:]:
            shadow = httpx.get(f"{urls[name]}/v1/dashboard", timeout=30).json()["quality"]
            jobs = shadow["shadow"]
            print(
                f"# share {name}: shadow jobs {jobs['attempts']}, judged {jobs['judged']}, "
                f"failed {jobs['failed']}"
            )
        print(
            f"# {args.rounds} rounds x {args.requests} routed requests per gateway and row; "
            "all servers share this machine's CPU"
        )
    finally:
        for proc in reversed(procs):
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
