"""`router-mf-<t>` against `router-bert-<t>` through one gateway process, on loopback.

    .venv/bin/python bench/mf_bench.py                          # 50 ms embeddings latency
    .venv/bin/python bench/mf_bench.py --embed-latency-ms 150 --requests 48 --rounds 2

Processes on 127.0.0.1: the fake upstream (tests/gateway/fake_upstream.py), a fake
OpenAI-compatible embeddings API (tests/routers/fake_embeddings.py) that answers every call
after a fixed `--embed-latency-ms` (one call embeds a whole batch), and one gateway serving
both names: `router-bert-0.5` on the base-size checkpoint (bench/.cache/bert-base-spread,
`ROUTELLM_BERT_DTYPE=auto`, classifier cache off) and `router-mf-0.5` on an MF checkpoint at
RouteLLM's real size (dim 128, 64 models, text_dim 1536; random weights, so its choices mean
nothing, but each decision costs what the real one does). Every request is a unique
bench/prompts.py prompt, streamed, so no cache answers either router.

The two names take turns, round after round (ABAB...), in one run, so drift of a shared machine
spreads over both. Prints requests/s and p50/p99 latency per name and client count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.compare import (  # noqa: E402
    CHECKPOINT,
    Sample,
    Server,
    log,
    pct,
    run_load,
    serve_upstream,
    start,
    start_mf_gateway,
)
from bench.soak import free_port, stop  # noqa: E402

MF_CHECKPOINT = ROOT / "bench" / ".cache" / "mf-routellm-size"
NAMES = ("router-bert-0.5", "router-mf-0.5")


def serve_embeddings(port: int, latency_s: float) -> None:
    """The fake embeddings API alone on 127.0.0.1:`port` (the `--serve-embeddings` mode)."""
    import uvicorn

    from tests.routers.fake_embeddings import FakeEmbeddings

    uvicorn.run(
        FakeEmbeddings(latency=latency_s), host="127.0.0.1", port=port, log_level="critical"
    )


def start_servers(tmp: Path, latency_ms: float) -> tuple[Server, list[Server]]:
    """The fake upstream, the fake embeddings API and the gateway serving both names."""
    port = free_port()
    upstream = start(
        "upstream", [sys.executable, __file__, "--serve-upstream", str(port)], port, "/v1/models",
        {}, tmp,
    )  # fmt: skip
    embeddings, gateway = start_mf_gateway(tmp, upstream.url, latency_ms)
    return gateway, [upstream, embeddings]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument(
        "--serve-embeddings", nargs=2, metavar=("PORT", "S"), help=argparse.SUPPRESS
    )
    parser.add_argument("--embed-latency-ms", type=float, default=50.0, help="per embeddings call")
    parser.add_argument(
        "--requests", type=int, default=96, help="requests per name and client count"
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternations (ABAB...)")
    parser.add_argument("--clients", default="1,8", help="client counts, comma-separated")
    parser.add_argument("--run-timeout", type=float, default=120.0, help="seconds per run, at most")
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    if args.serve_embeddings:
        serve_embeddings(int(args.serve_embeddings[0]), float(args.serve_embeddings[1]))
        return 0
    from bench.prompts import make_prompts
    from classifier.cpu import detect_cpu_features

    counts = [int(c) for c in args.clients.split(",")]
    prompts, _ = make_prompts(args.requests * len(NAMES) * len(counts) + 16, seed=11,
                              checkpoint=CHECKPOINT)  # fmt: skip
    warm, prompts = prompts[:16], prompts[16:]
    results: dict[tuple[str, int], Sample] = {}
    with tempfile.TemporaryDirectory() as tmp:
        gateway, helpers = start_servers(Path(tmp), args.embed_latency_ms)
        try:
            for name in NAMES:
                asyncio.run(run_load(gateway.url, name, warm, 4, args.run_timeout, Sample()))
            per_round = args.requests // args.rounds
            for clients in counts:
                for r in range(args.rounds):
                    for name in NAMES if r % 2 == 0 else NAMES[::-1]:
                        chunk, prompts = prompts[:per_round], prompts[per_round:]
                        sample = results.setdefault((name, clients), Sample())
                        log(f"  {name} x{clients} round {r + 1}")
                        asyncio.run(
                            run_load(gateway.url, name, chunk, clients, args.run_timeout, sample)
                        )
        finally:
            for server in (gateway, *helpers):
                stop(server.proc)
    cpu = detect_cpu_features()
    print(f"CPU: {cpu.model or 'unknown'}, {os.cpu_count()} cores; flags: {cpu.describe()}")
    print(f"command: `{shlex.join(['.venv/bin/python', 'bench/mf_bench.py', *sys.argv[1:]])}`")
    print(f"embeddings latency: {args.embed_latency_ms:g} ms per call (fixed, by the fake)\n")
    print("| name | clients | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for (name, clients), s in results.items():
        rate = len(s.latency) / s.wall if s.wall else 0.0
        print(
            f"| {name} | {clients} | {rate:.1f} | {pct(s.latency, 0.5):.1f} | "
            f"{pct(s.latency, 0.99):.1f} | {s.errors} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
