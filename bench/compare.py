"""One benchmark command: this gateway against RouteLLM's server, LiteLLM's proxy and the fake
upstream alone, in one run, on loopback.

    make bench-compare                                   # = .venv/bin/python bench/compare.py
    .venv/bin/python bench/compare.py --requests 32 --rounds 2      # a shorter run

The first run installs RouteLLM's server (`routellm[serve]==0.2.0`) and LiteLLM's proxy
(`litellm[proxy]==1.81.16`) into their own virtual environments under bench/.venvs/ (git-ignored;
minutes, once). Then every server starts as its own process on 127.0.0.1:

- the fake upstream (tests/gateway/fake_upstream.py: a 4-chunk stream + [DONE]);
- this gateway twice, `ROUTELLM_BERT_DTYPE=float32` and `auto` (the best dtype for this CPU),
  both on the base-size checkpoint (bench/.cache/bert-base-spread, built by
  bench/classifier_bench.py) with the classifier cache off so every prompt is classified; and a
  third time, int8, on the student distilled from it (bench/.cache/student, written by
  bench/train_real.py; `--student DIR`), when it exists;
- this gateway with a many-model router (`many`): the packaged all-MiniLM-L6-v2 encoder on
  ONNX Runtime float32 and a kNN head over 10,000 prompts' vectors (bench/.cache/embedding-router,
  built here: random unit vectors and labels, so its choices mean nothing, but each decision
  costs what a 10,000-row router's does); classifier cache off as well;
- this gateway serving `router-mf-0.5`, RouteLLM's MF router on a checkpoint of its real size
  (random weights, bench/.cache/mf-routellm-size), embedding with a fake OpenAI-compatible
  embeddings API that answers every call after a fixed `--embed-latency-ms` (50 ms);
- RouteLLM's `routellm.openai_server` with its BERT router on the same checkpoint, calling the
  fake upstream through its own litellm;
- LiteLLM's proxy, serving the fake upstream's model.

Workloads (streaming, each request a unique bench/prompts.py prompt, so no cache answers):
`routed` (`router-bert-0.5`, the name both this gateway and RouteLLM understand; `many` for the
many-model router) at 16 and 1 clients against RouteLLM and the gateways; `direct` (a model by
name, no classification) at 16 clients against the fake upstream alone, LiteLLM and the gateway.
Systems of one workload take turns, round after round, in a rotating order, so drift of a shared
machine spreads over all of them. Every run is bounded by `--requests` and by `--run-timeout`
seconds.

Prints one table (requests/s, p50/p99 latency, p50 time to first byte of the stream) and the
ratios the issue sets targets for.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.soak import free_port, stop  # noqa: E402

VENVS = ROOT / "bench" / ".venvs"
CHECKPOINT = ROOT / "bench" / ".cache" / "bert-base-spread"
STUDENT = ROOT / "bench" / ".cache" / "student"
EMBEDDING_ROUTER = ROOT / "bench" / ".cache" / "embedding-router"
ONNX_CACHE = ROOT / "bench" / ".cache" / "onnx"
PACKAGES = {
    "routellm": ["routellm[serve]==0.2.0", "torch==2.13.0"],
    "litellm": ["litellm[proxy]==1.81.16"],
}
# Neither tool may reach out: RouteLLM builds OpenAI clients at import (a key must be set, none
# is used), litellm fetches its model price map unless told to use the packaged copy.
QUIET_ENV = {
    "OPENAI_API_KEY": "unused-bench-key",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
ROUTED = "router-bert-0.5"


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- installs and servers


def venv_python(name: str) -> Path:
    """bench/.venvs/<name>/bin/python with PACKAGES[name] installed (once; a stamp records it)."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = " ".join(PACKAGES[name])
    if stamp.is_file() and stamp.read_text() == wanted:
        return python
    log(f"installing {wanted} into {venv} (once; minutes)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES[name]], check=True)
    stamp.write_text(wanted)
    return python


def serve_upstream(port: int) -> None:
    """The fake upstream alone on 127.0.0.1:`port` (the `--serve-upstream` mode)."""
    import uvicorn

    from tests.gateway.fake_upstream import FakeUpstream

    uvicorn.run(FakeUpstream(), host="127.0.0.1", port=port, log_level="critical")


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    routed_model: str = ROUTED
    direct_model: str = "strong"


def start(
    name: str, cmd: list[str], port: int, health: str, env: dict[str, str], logs: Path
) -> Server:
    log(f"starting {name}: {shlex.join(cmd)}")
    out = (logs / f"{name}.log").open("wb")
    proc = subprocess.Popen(cmd, env={**os.environ, **QUIET_ENV, **env}, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited early; its output is in {logs / (name + '.log')}")
        try:
            # RouteLLM's server has no health route: any answer to a GET means it serves.
            if httpx.get(f"{url}{health}", timeout=2).status_code < 500:
                return Server(name, url, proc)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer within 600 s; see {logs / (name + '.log')}")
        time.sleep(0.3)


def gateway_config(path: Path, upstream: str) -> Path:
    import yaml

    doc = {
        "upstreams": {"fake": {"base_url": f"{upstream}/v1"}},
        "models": {
            "strong": {"upstream": "fake", "model": "ok:strong"},
            "weak": {"upstream": "fake", "model": "ok:weak"},
        },
        "routing": {"strong": "strong", "weak": "weak", "fallback": "weak"},
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def start_gateway(name: str, tmp: Path, env: dict[str, str]) -> Server:
    """This gateway as `name` on a free port: the base-size checkpoint, its classifier cache off
    (every prompt classified), no ledger; `env` adds to or overrides that."""
    port = free_port()
    base = {
        "ROUTELLM_BERT_MODEL": str(CHECKPOINT),
        "ROUTELLM_BERT_CACHE_SIZE": "0",
        "ROUTELLM_BERT_CACHE_DIR": str(ONNX_CACHE),
        "ROUTELLM_LEDGER": "off",
    }
    command = [str(ROOT / ".venv/bin/routellm-gateway"), "--port", str(port)]
    return start(name, command, port, "/health", {**base, **env}, tmp)


def embedding_router(directory: Path = EMBEDDING_ROUTER, rows: int = 10_000) -> Path:
    """A many-model router directory with a kNN head over `rows` random unit vectors (built
    once): what serving a router trained on that many prompts costs per decision."""
    import numpy as np

    from routers.encoders import DEFAULT_ENCODER, normalise
    from routers.heads import HEAD_FILE, KnnHead
    from routers.manifest import MANIFEST, Manifest, write_manifest

    if (directory / MANIFEST).exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    points = normalise(rng.standard_normal((rows, 384)).astype(np.float32))
    labels = (rng.random((rows, 2)) < [0.7, 0.5]).astype(np.float32)
    np.savez(directory / HEAD_FILE, **KnnHead(points, labels).arrays())
    manifest = Manifest("embedding", ("strong", "weak"), encoder=DEFAULT_ENCODER, head="knn")
    write_manifest(directory, manifest, [HEAD_FILE])
    return directory


def start_embedding_gateway(tmp: Path, upstream: str) -> Server:
    """This gateway serving `many`, a many-model router over the fake upstream's two models."""
    import yaml

    doc = yaml.safe_load(gateway_config(tmp / "many.yaml", upstream).read_text())
    for name, price in (("strong", (2.5, 10.0)), ("weak", (0.15, 0.6))):
        doc["models"][name]["price"] = {"input": price[0], "output": price[1]}
    doc["routers"] = {
        "many": {
            "router": str(embedding_router()),
            "models": ["strong", "weak"],
            "cost_weight": 0.2,
        }
    }
    (tmp / "many.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    server = start_gateway("gateway-embedding", tmp, {"ROUTELLM_CONFIG": str(tmp / "many.yaml")})
    server.routed_model = "many"
    server.name = "gateway many-model (MiniLM float32 + kNN)"
    return server


def start_mf_gateway(tmp: Path, upstream: str, latency_ms: float) -> list[Server]:
    """The fake embeddings API and this gateway serving `router-mf-0.5` (bench/mf_bench.py's
    checkpoint and fake) and `router-bert-0.5` (dtype auto, cache off); the gateway is the last
    server."""
    from bench.mf_bench import MF_CHECKPOINT
    from tests.routers.fake_embeddings import write_mf_checkpoint

    if not (MF_CHECKPOINT / "config.json").exists():
        write_mf_checkpoint(MF_CHECKPOINT)
    port = free_port()
    mf_bench = str(ROOT / "bench" / "mf_bench.py")
    embeddings = start(
        "embeddings",
        [sys.executable, mf_bench, "--serve-embeddings", str(port), str(latency_ms / 1000)],
        port,
        "/v1/models",
        {},
        tmp,
    )
    gateway = start_gateway(
        "gateway-mf",
        tmp,
        {
            "ROUTELLM_CONFIG": str(gateway_config(tmp / "mf.yaml", upstream)),
            "ROUTELLM_BERT_DTYPE": "auto",
            "ROUTELLM_MF_MODEL": str(MF_CHECKPOINT),
            "ROUTELLM_EMBEDDINGS_URL": f"{embeddings.url}/v1",
        },
    )
    gateway.routed_model = "router-mf-0.5"
    gateway.name = f"gateway router-mf (embeddings {latency_ms:g} ms)"
    return [embeddings, gateway]


def start_all(
    tmp: Path, which: set[str], student: Path, embed_latency_ms: float = 50.0
) -> dict[str, Server]:
    import yaml

    servers: dict[str, Server] = {}
    port = free_port()
    servers["upstream"] = start(
        "upstream",
        [sys.executable, __file__, "--serve-upstream", str(port)],
        port,
        "/v1/models",
        {},
        tmp,
    )
    upstream = servers["upstream"].url
    servers["upstream"].direct_model = "ok:strong"
    servers["upstream"].name = "fake upstream alone"
    config = gateway_config(tmp / "gateway.yaml", upstream)
    gateways = (
        ("gateway-float32", CHECKPOINT, "float32"),
        ("gateway-auto", CHECKPOINT, "auto"),
        ("gateway-student", student, "int8"),  # a student's threshold is recalibrated anyway
    )
    for name, model, dtype in gateways:
        if name not in which:
            continue
        servers[name] = start_gateway(
            name,
            tmp,
            {
                "ROUTELLM_CONFIG": str(config),
                "ROUTELLM_BERT_MODEL": str(model),
                "ROUTELLM_BERT_DTYPE": dtype,
                "ROUTELLM_BERT_DEVICE": "cpu",
            },
        )
        chosen = httpx.get(f"{servers[name].url}/health", timeout=10).json()["classifier"]
        kind = "student" if name == "gateway-student" else "gateway"
        servers[name].name = f"{kind} {chosen['dtype']} ({chosen['runtime']})"
    if "gateway-embedding" in which:
        servers["gateway-embedding"] = start_embedding_gateway(tmp, upstream)
    if "gateway-mf" in which:
        embeddings, servers["gateway-mf"] = start_mf_gateway(tmp, upstream, embed_latency_ms)
        servers["embeddings"] = embeddings
    if "routellm" in which:
        (tmp / "routellm.yaml").write_text(
            yaml.safe_dump({"bert": {"checkpoint_path": str(CHECKPOINT)}})
        )
        port = free_port()
        # Its __main__ binds 0.0.0.0; run the same app object on loopback instead. The module
        # parses sys.argv at import, so the arguments are set before it is imported.
        code = (
            "import sys, uvicorn; sys.argv = ['routellm'] + sys.argv[1:]; "
            "import routellm.openai_server as s; "
            f"uvicorn.run(s.app, host='127.0.0.1', port={port}, log_level='warning')"
        )
        servers["routellm"] = start(
            "routellm",
            [
                str(venv_python("routellm")),
                "-c",
                code,
                "--routers",
                "bert",
                "--config",
                str(tmp / "routellm.yaml"),
                "--base-url",
                f"{upstream}/v1",
                "--api-key",
                "unused",
                "--strong-model",
                "openai/ok:strong",
                "--weak-model",
                "openai/ok:weak",
            ],
            port,
            "/v1/chat/completions",
            {},
            tmp,
        )
        servers["routellm"].name = "RouteLLM server 0.2.0 (torch float32)"
    if "litellm" in which:
        (tmp / "litellm.yaml").write_text(
            yaml.safe_dump(
                {
                    "model_list": [
                        {
                            "model_name": "strong",
                            "litellm_params": {
                                "model": "openai/ok:strong",
                                "api_base": f"{upstream}/v1",
                                "api_key": "unused",
                            },
                        }
                    ]
                }
            )
        )
        port = free_port()
        litellm = venv_python("litellm").parent / "litellm"
        servers["litellm"] = start(
            "litellm",
            [
                *(str(litellm), "--config", str(tmp / "litellm.yaml")),
                *("--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"),
            ],
            port,
            "/health/liveliness",
            {},
            tmp,
        )
        servers["litellm"].name = "LiteLLM proxy 1.81.16"
    return servers


# ---------------------------------------------------------------- load


@dataclass
class Sample:
    latency: list[float] = field(default_factory=list)
    first_byte: list[float] = field(default_factory=list)
    wall: float = 0.0
    errors: int = 0


async def run_load(
    url: str, model: str, prompts: list[str], clients: int, limit_s: float, into: Sample
) -> None:
    """`clients` closed-loop streaming clients over `prompts`; bounded by `limit_s` seconds."""
    todo = iter(prompts)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient) -> None:
        for prompt in todo:
            body = {
                "model": model,
                "stream": True,
                "messages": [{"role": "user", "content": prompt}],
            }
            started = time.perf_counter()
            first: float | None = None
            try:
                async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
                    async for chunk in r.aiter_raw():
                        if first is None and chunk:
                            first = time.perf_counter() - started
                    ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            if not ok or first is None:
                into.errors += 1
                continue
            into.first_byte.append(first)
            into.latency.append(time.perf_counter() - started)

    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(*(client(http) for _ in range(clients))), limit_s)
        except TimeoutError:
            into.errors += 1
            log(f"  run against {url} stopped after {limit_s:.0f} s")
        into.wall += time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Row:
    workload: str
    system: str
    sample: Sample

    @property
    def rate(self) -> float:
        return len(self.sample.latency) / self.sample.wall if self.sample.wall else 0.0


def measure(
    servers: dict[str, Server],
    workload: str,
    names: list[str],
    clients: int,
    prompts: list[str],
    args: argparse.Namespace,
) -> list[Row]:
    present = [n for n in names if n in servers]
    samples = {n: Sample() for n in present}
    per_round = len(prompts) // args.rounds
    for r in range(args.rounds):
        chunk = prompts[r * per_round : (r + 1) * per_round]
        order = present[r % len(present) :] + present[: r % len(present)]
        for name in order:
            server = servers[name]
            model = server.routed_model if workload == "routed" else server.direct_model
            log(f"  {workload} x{clients} round {r + 1}: {server.name}")
            asyncio.run(
                run_load(server.url, model, chunk, clients, args.run_timeout, samples[name])
            )
    return [Row(f"{workload}, {clients} clients", servers[n].name, samples[n]) for n in present]


def ratio(a: Row | None, b: Row | None, attr: str = "rate") -> str:
    if a is None or b is None:
        return "-"
    if attr == "rate":
        return f"{a.rate / b.rate:.2f}×" if b.rate else "-"
    x, y = pct(a.sample.latency, 0.5), pct(b.sample.latency, 0.5)
    return f"{x / y:.2f}×" if y else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=96, help="requests per system and run")
    parser.add_argument("--rounds", type=int, default=3, help="alternations per workload")
    parser.add_argument("--run-timeout", type=float, default=120.0, help="seconds per run, at most")
    parser.add_argument(
        "--systems",
        default="gateway-float32,gateway-auto,gateway-student,gateway-embedding,gateway-mf,"
        "routellm,litellm",
        help="which of gateway-float32, gateway-auto, gateway-student, gateway-embedding, "
        "gateway-mf, routellm, litellm to start (gateway-student only when --student exists)",
    )
    parser.add_argument(
        "--embed-latency-ms",
        type=float,
        default=50.0,
        help="gateway-mf: the fake embeddings API's fixed latency per call",
    )
    parser.add_argument(
        "--student",
        type=Path,
        default=STUDENT,
        help="a distilled router the gateway also serves (default: bench/train_real.py's)",
    )
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    if not (CHECKPOINT / "model.safetensors").exists():
        log(f"{CHECKPOINT} is missing: building it with bench/classifier_bench.py's code")
        from bench.classifier_bench import ensure_checkpoints

        ensure_checkpoints()
    from bench.prompts import make_prompts
    from classifier.cpu import detect_cpu_features

    started = time.perf_counter()
    which = set(args.systems.split(","))
    if not (args.student / "config.json").exists():
        which.discard("gateway-student")
    prompts, _ = make_prompts(args.requests * 3 + 16, seed=7, checkpoint=CHECKPOINT)
    warm, routed16, routed1, direct = (
        prompts[:16],
        prompts[16 : 16 + args.requests],
        prompts[16 + args.requests : 16 + args.requests + args.requests // 3],
        prompts[16 + 2 * args.requests : 16 + 3 * args.requests],
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    servers: dict[str, Server] = {}
    try:
        servers = start_all(tmp, which, args.student, args.embed_latency_ms)
        routed_names = [
            "routellm",
            "gateway-float32",
            "gateway-auto",
            "gateway-student",
            "gateway-embedding",
            "gateway-mf",
        ]
        for name in routed_names:  # first passes pick kernels: not on the clock
            if name in servers:
                server = servers[name]
                asyncio.run(run_load(server.url, server.routed_model, warm, 4, 120, Sample()))
        rows = measure(servers, "routed", routed_names, 16, routed16, args)
        rows += measure(servers, "routed", routed_names, 1, routed1, args)
        direct_names = ["upstream", "litellm", "gateway-float32"]
        for name in direct_names:
            if name in servers:
                server = servers[name]
                asyncio.run(run_load(server.url, server.direct_model, warm, 4, 60, Sample()))
        rows += measure(servers, "direct", direct_names, 16, direct, args)
    finally:
        for server in servers.values():
            stop(server.proc)

    cpu = detect_cpu_features()
    print(f"\nCPU: {cpu.model or 'unknown'}, {os.cpu_count()} cores; flags: {cpu.describe()}")
    print(f"command: `{shlex.join(['.venv/bin/python', 'bench/compare.py', *sys.argv[1:]])}`\n")
    print("| workload | system | req/s | p50 ms | p99 ms | first byte p50 ms | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        s = row.sample
        cells = (
            (f"{row.rate:.1f}", f"{pct(s.latency, 0.5):.0f}", f"{pct(s.latency, 0.99):.0f}")
            if s.latency
            else ("-", "-", "-")
        )
        fb = f"{pct(s.first_byte, 0.5):.0f}" if s.first_byte else "-"
        print(f"| {row.workload} | {row.system} | {' | '.join(cells)} | {fb} | {s.errors} |")

    def find(workload: str, prefix: str) -> Row | None:
        return next(
            (r for r in rows if r.workload == workload and r.system.startswith(prefix)), None
        )

    r16, r1, d16 = "routed, 16 clients", "routed, 1 clients", "direct, 16 clients"
    f32 = "gateway float32"
    auto = servers["gateway-auto"].name if "gateway-auto" in servers else "gateway auto"
    ratios = [
        (
            f"routed x16, {f32} / RouteLLM, req/s",
            find(r16, f32),
            find(r16, "Route"),
            "rate",
            "≥ 2.5×",
        ),
        (
            f"routed x16, {auto} / RouteLLM, req/s",
            find(r16, auto),
            find(r16, "Route"),
            "rate",
            "≥ 8×",
        ),
        (
            "routed x16, student (distilled) / RouteLLM, req/s",
            find(r16, "student"),
            find(r16, "Route"),
            "rate",
            "≥ 8×",
        ),
        (
            "routed x16, many-model (MiniLM + kNN) / RouteLLM, req/s",
            find(r16, "gateway many-model"),
            find(r16, "Route"),
            "rate",
            "≥ 10×",
        ),
        (
            "routed x16, router-mf / RouteLLM, req/s",
            find(r16, "gateway router-mf"),
            find(r16, "Route"),
            "rate",
            "",
        ),
        (f"routed x1, {f32} / RouteLLM, p50", find(r1, f32), find(r1, "Route"), "p50", ""),
        (
            "routed x1, many-model / RouteLLM, p50",
            find(r1, "gateway many-model"),
            find(r1, "Route"),
            "p50",
            "",
        ),
        (f"routed x1, {auto} / RouteLLM, p50", find(r1, auto), find(r1, "Route"), "p50", ""),
        (
            "direct x16, gateway / fake upstream alone, req/s",
            find(d16, "gateway"),
            find(d16, "fake upstream"),
            "rate",
            "≥ 0.85×",
        ),
        (
            "direct x16, gateway / LiteLLM, req/s",
            find(d16, "gateway"),
            find(d16, "LiteLLM"),
            "rate",
            "≥ 7×",
        ),
    ]
    print("\n| ratio | measured | target |\n|---|---:|---:|")
    for label, a, b, attr, target in ratios:
        print(f"| {label} | {ratio(a, b, attr)} | {target} |")
    print(
        f"\n{args.requests} requests per system and workload in {args.rounds} alternating rounds; "
        f"wall time {time.perf_counter() - started:.0f} s; server logs in {tmp}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
