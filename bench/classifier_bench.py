"""Classifier speed: our in-process classifier per runtime/dtype vs RouteLLM's BERTRouter.

    .venv/bin/python bench/classifier_bench.py                 # full: <= ~15 min (first run
                                                               #   also exports ONNX: + ~5 min)
    .venv/bin/python bench/classifier_bench.py --quick         # <= ~3 min once exports are cached
    .venv/bin/python bench/classifier_bench.py --prompts 32 --callers 1,16 --dtypes float32,int8

What it measures, all in this one run, on bench/prompts.py's mixed-length prompts (unique, so
with the classifier cache disabled nothing is answered from a cache):

- our configurations: `float32` (runtime auto -> ONNX Runtime), `bfloat16` (torch), `int8`
  (auto -> ONNX Runtime int8), and for reference `torch-float32` / `torch-int8`. Callers are
  asyncio tasks each awaiting `LocalClassifier.classify([prompt])`, one prompt at a time, through
  the real micro-batcher; C callers split the prompts as prompts[k::C].
- RouteLLM `BERTRouter`: bench/routellm_baseline.py run under /work/routellm-venv/bin/python as a
  subprocess (same prompts, same caller split). Its server calls the model synchronously on the
  event loop, so its C callers are served serially. Without that venv an in-process equivalent
  (torch float32, sdpa attention, one unpadded pass per prompt under no_grad, serial) stands in,
  labelled as such.

The model is the base-size random checkpoint (hidden 768, 12 layers, vocab 250002) in
bench/.cache/bert-base, built if missing. A random head gives P(LABEL_0) ~ 1/3 for every prompt,
which makes routing-decision agreement meaningless, so the bench uses a copy in
bench/.cache/bert-base-spread whose classifier head output weights are scaled up until the
logit spread across prompts is about 1.5 (P(LABEL_0) then spreads over most of 0..1); speed is
unaffected. Decision agreement is measured at the P(LABEL_0) thresholds that route 25/50/75 % of
the prompts to the strong model under float32.

Batching rules, before and after issue 28 (`--rules old,new`, both by default): `new` is the
package's `classifier.batching.plan_passes` (least padded work, at most 256 padded tokens a pass);
`old` is the rule it replaced (sort, cut where a text is over 1.4x the group's shortest and over
16 tokens longer), kept here only, patched into the batcher for its turns. Both arms take turns
round after round (ABAB, `--rounds`), on the same loaded model, so drift of a shared machine falls
on both. The padding waste column is the share of padded tokens that were padding.

`--through inprocess,service,gateway` also drives the classifier HTTP service (POST /predict) and
the gateway (POST /v1/chat/completions, `router-bert-0.5`, on bench/compare.py's fake upstream),
each a real process per rule started by this script (`--child`), with C concurrent HTTP clients.

ONNX exports are cached in bench/.cache/onnx (reused across runs; the first run pays them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import MethodType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CACHE = ROOT / "bench" / ".cache"
BASE = CACHE / "bert-base"
SPREAD = CACHE / "bert-base-spread"
ONNX_CACHE = CACHE / "onnx"
ROUTELLM_PYTHON = Path("/work/routellm-venv/bin/python")
# name -> (dtype, runtime)
CONFIGS: dict[str, tuple[str, str]] = {
    "float32": ("float32", "auto"),
    "bfloat16": ("bfloat16", "auto"),
    "int8": ("int8", "auto"),
    "torch-float32": ("float32", "torch"),
    "torch-int8": ("int8", "torch"),
}
TARGET_SPREAD = 1.5
BUCKETS = ((0, 31, "8-31"), (32, 127, "32-127"), (128, 10_000, "128-400"))


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


# --- checkpoints ---


def ensure_checkpoints() -> Path:
    """The spread-head copy of the base checkpoint, building either when missing."""
    from classifier.synthetic import build_checkpoint

    if not (BASE / "model.safetensors").exists():
        log(f"building {BASE} (random base-size checkpoint, ~1 min)")
        build_checkpoint(BASE, hidden=768, layers=12, vocab=250002)
    if (SPREAD / "model.safetensors").exists():
        return SPREAD
    import shutil

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bench.prompts import make_prompts

    log(f"building {SPREAD}: {BASE} with its head's output weights scaled up")
    tok = AutoTokenizer.from_pretrained(BASE)
    model = AutoModelForSequenceClassification.from_pretrained(BASE).eval()
    prompts, _ = make_prompts(24, seed=99, checkpoint=BASE)
    with torch.inference_mode():
        logits = torch.cat([model(**tok([p], return_tensors="pt")).logits for p in prompts])
    # spread of "strong vs the rest" across prompts: scale it to TARGET_SPREAD, centre it at 0
    margin = logits[:, 0] - torch.logsumexp(logits[:, 1:], dim=1)
    scale = TARGET_SPREAD / max(float(margin.std()), 1e-6)
    head = model.classifier.out_proj
    with torch.no_grad():
        head.weight.mul_(scale)
        head.bias.mul_(scale)
        logits = torch.cat([model(**tok([p], return_tensors="pt")).logits for p in prompts])
        margin = logits[:, 0] - torch.logsumexp(logits[:, 1:], dim=1)
        head.bias[0] -= margin.mean()
    tmp = SPREAD.with_name(SPREAD.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "synthetic.json").write_text(json.dumps({"base": str(BASE), "head_scale": scale}))
    tmp.rename(SPREAD)
    return SPREAD


# --- RouteLLM baseline ---


def routellm(checkpoint: Path, n: int, callers: list[int]) -> dict[str, Any]:
    if ROUTELLM_PYTHON.exists():
        cmd = [
            str(ROUTELLM_PYTHON),
            str(ROOT / "bench" / "routellm_baseline.py"),
            "--checkpoint",
            str(checkpoint),
            "--n",
            str(n),
            "--callers",
            ",".join(map(str, callers)),
        ]
        log("RouteLLM:", shlex.join(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        if done.returncode == 0:
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
            result["label"] = "RouteLLM BERTRouter (routellm venv, subprocess)"
            return result
        log("RouteLLM baseline failed; using the in-process equivalent:", done.stderr[-500:])
    return routellm_equivalent(checkpoint, n, callers)


def routellm_equivalent(checkpoint: Path, n: int, callers: list[int]) -> dict[str, Any]:
    """BERTRouter.calculate_strong_win_rate, reproduced: torch float32, one pass per prompt."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bench.prompts import make_prompts

    prompts, _ = make_prompts(n + 4, checkpoint=checkpoint)
    warm, prompts = prompts[n:], prompts[:n]
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=3)
    tok = AutoTokenizer.from_pretrained(checkpoint)

    def rate(p: str) -> float:
        with torch.no_grad():
            logits = model(**tok(p, return_tensors="pt", padding=True, truncation=True))
            row = logits.logits.numpy()[0]
        e = np.exp(row - row.max())
        return float(1 - (e / e.sum())[-2:].sum())

    for p in warm:
        rate(p)
    runs = {}
    for c in callers:

        async def drive(c: int = c) -> tuple[float, list[float]]:
            lat: list[float] = []

            async def client(k: int) -> None:
                for p in prompts[k::c]:
                    t = time.perf_counter()
                    await asyncio.sleep(0)
                    rate(p)  # on the loop, as RouteLLM's server does
                    lat.append(time.perf_counter() - t)

            t0 = time.perf_counter()
            await asyncio.gather(*(client(k) for k in range(c)))
            return time.perf_counter() - t0, lat

        wall, lat = asyncio.run(drive())
        runs[str(c)] = {
            "callers": c,
            "throughput_per_s": len(prompts) / wall,
            "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * pct(lat, 0.99),
        }
    return {"label": "RouteLLM-equivalent (in-process torch fp32 sdpa, serial)", "runs": runs}


# --- batching rules: the package's (new) and the one it replaced (old, only here) ---

RULES = ("old", "new")


def legacy_group(batcher: Any, texts: list[str]) -> list[list[str]]:
    """`MicroBatcher._group` before issue 28: sort by length, start a new group when a text is
    over 1.4x the group's shortest and over 16 tokens longer (2x and 64 without token counts)."""
    if len(texts) < 2:
        return [texts] if texts else []
    sizes, ratio, slack = [len(t) for t in texts], 2.0, 64
    if batcher._lengths is not None:
        try:
            counted = batcher._lengths(texts)
            if len(counted) == len(texts):
                sizes, ratio, slack = list(counted), 1.4, 16
        except Exception:
            pass
    groups: list[list[str]] = []
    head = 0
    for i in sorted(range(len(texts)), key=sizes.__getitem__):
        if groups and sizes[i] <= max(head * ratio, head + slack):
            groups[-1].append(texts[i])
            continue
        groups.append([texts[i]])
        head = sizes[i]
    return groups


@contextmanager
def batching_rule(batcher: Any, name: str) -> Iterator[list[list[str]]]:
    """`batcher` under rule `name` for the block; yields the texts of each forward pass it runs."""
    passes: list[list[str]] = []
    predict = batcher._predict

    def recording(texts: list[str]) -> Any:
        passes.append(list(texts))
        return predict(texts)

    batcher._predict = recording
    if name == "old":
        batcher._group = MethodType(legacy_group, batcher)
    try:
        yield passes
    finally:
        batcher._predict = predict
        batcher.__dict__.pop("_group", None)


def waste(passes: list[list[str]], tokens: dict[str, int]) -> float:
    from classifier.batching import padding_waste

    sizes = [tokens[t] for p in passes for t in p]
    indices, start = [], 0
    for p in passes:
        indices.append(list(range(start, start + len(p))))
        start += len(p)
    return padding_waste(sizes, indices)


def order(rnd: int) -> tuple[str, ...]:
    """ABAB: the rules swap places every round."""
    return RULES if rnd % 2 == 0 else RULES[::-1]


def record(
    runs: dict[str, Any], key: str, n: int, wall: float, lat: list[float], cpu_s: float
) -> None:
    run = runs.setdefault(key, {"rates": [], "lat": [], "waste": [], "cpu_ms": []})
    run["rates"].append(n / wall)
    run["lat"].extend(lat)
    run["cpu_ms"].append(1000 * cpu_s / n)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid`, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- our classifier, in-process ---


async def drive(clf: Any, prompts: list[str], callers: int) -> tuple[float, list[float], list[Any]]:
    lat = [0.0] * len(prompts)
    scores: list[Any] = [None] * len(prompts)

    async def client(k: int) -> None:
        for i in range(k, len(prompts), callers):
            t = time.perf_counter()
            [scores[i]] = await clf.classify([prompts[i]])
            lat[i] = time.perf_counter() - t

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(callers)))
    return time.perf_counter() - t0, lat, scores


def ours(
    name: str,
    checkpoint: Path,
    prompts: list[str],
    counts: list[int],
    warm: list[str],
    callers: list[int],
    rounds: int,
) -> dict[str, Any]:
    from classifier.local import LocalClassifier
    from classifier.settings import ClassifierSettings

    dtype, runtime = CONFIGS[name]
    settings = ClassifierSettings(
        model=str(checkpoint),
        dtype=dtype,  # type: ignore[arg-type]
        runtime=runtime,  # type: ignore[arg-type]
        device="cpu",
        cache_size=0,
        onnx_cache_dir=str(ONNX_CACHE),
    )
    t = time.perf_counter()
    clf = LocalClassifier.load(settings)
    load_s = time.perf_counter() - t
    result: dict[str, Any] = {"runtime": clf.runtime, "load_s": load_s, "runs": {}}
    tokens = dict(zip(prompts, counts, strict=True))

    async def run_all() -> None:
        for p in warm:
            await clf.classify([p])
        for rnd in range(rounds):
            for rule in order(rnd):
                for c in callers:
                    cpu = time.process_time()
                    with batching_rule(clf.batcher, rule) as passes:
                        wall, lat, scores = await drive(clf, prompts, c)
                    cpu = time.process_time() - cpu
                    key = f"{rule}/{c}"
                    record(result["runs"], key, len(prompts), wall, lat, cpu)
                    result["runs"][key]["waste"].append(waste(passes, tokens))
                    result["runs"][key]["passes"] = len(passes)
                    if rule == "new":
                        result.setdefault("p_strong", [s.get("LABEL_0") for s in scores])
                    log(f"  {name} {rule} callers={c}: {len(prompts) / wall:.2f}/s")
        await clf.aclose()

    asyncio.run(run_all())
    return result


# --- the classifier service and the gateway, each a real process per rule ---


def child(kind: str, rule: str, port: int, config: str) -> int:
    """The `--child` mode: serve `kind` (service or gateway) under batching rule `rule`."""
    if rule == "old":
        from classifier.batching import MicroBatcher

        MicroBatcher._group = legacy_group  # type: ignore[method-assign]
    if kind == "service":
        from classifier.cli import main as serve_classifier

        return serve_classifier(["--port", str(port)])
    from gateway.cli import main as serve_gateway

    return serve_gateway(["--port", str(port), "--config", config])


async def drive_http(
    url: str, kind: str, prompts: list[str], callers: int
) -> tuple[float, list[float]]:
    import httpx

    lat = [0.0] * len(prompts)
    path = "/predict" if kind == "service" else "/v1/chat/completions"

    def body(p: str) -> dict[str, Any]:
        if kind == "service":
            return {"inputs": p}
        return {"model": "router-bert-0.5", "messages": [{"role": "user", "content": p}]}

    limits = httpx.Limits(max_connections=callers, max_keepalive_connections=callers)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:

        async def client(k: int) -> None:
            for i in range(k, len(prompts), callers):
                t = time.perf_counter()
                answer = await http.post(path, json=body(prompts[i]))
                answer.raise_for_status()
                lat[i] = time.perf_counter() - t

        t0 = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(callers)))
        return time.perf_counter() - t0, lat


def served(
    names: list[str],
    kinds: list[str],
    checkpoint: Path,
    prompts: list[str],
    warm: list[str],
    callers: list[int],
    rounds: int,
) -> dict[str, dict[str, Any]]:
    """{"service float32": {"runs": {"old/16": ...}}, ...} for every kind, dtype and rule."""
    import tempfile

    from bench.compare import Server, gateway_config, start
    from bench.soak import free_port, stop

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="classifier-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        port = free_port()
        compare = str(ROOT / "bench" / "compare.py")
        upstream = start("upstream", [sys.executable, compare, "--serve-upstream", str(port)],
                         port, "/v1/models", {}, tmp)  # fmt: skip
        config = str(gateway_config(tmp / "gateway.yaml", upstream.url))
        try:
            for name in names:
                dtype, runtime = CONFIGS[name]
                env = {
                    "ROUTELLM_BERT_MODEL": str(checkpoint),
                    "ROUTELLM_BERT_DTYPE": dtype,
                    "ROUTELLM_BERT_RUNTIME": runtime,
                    "ROUTELLM_BERT_DEVICE": "cpu",
                    "ROUTELLM_BERT_CACHE_SIZE": "0",
                    "ROUTELLM_BERT_CACHE_DIR": str(ONNX_CACHE),
                    "ROUTELLM_LEDGER": "off",
                }
                servers: dict[tuple[str, str], Server] = {}
                try:
                    for kind in kinds:
                        for rule in RULES:
                            port = free_port()
                            cmd = [sys.executable, __file__, "--child", kind, "--rule", rule,
                                   "--port", str(port), "--config", config]  # fmt: skip
                            servers[kind, rule] = start(
                                f"{kind}-{name}-{rule}", cmd, port, "/health", env, tmp
                            )
                    asyncio.run(drive_all(servers, name, prompts, warm, callers, rounds, results))
                finally:
                    for server in servers.values():
                        stop(server.proc)
        finally:
            stop(upstream.proc)
    return results


async def drive_all(
    servers: dict[tuple[str, str], Any],
    name: str,
    prompts: list[str],
    warm: list[str],
    callers: list[int],
    rounds: int,
    results: dict[str, dict[str, Any]],
) -> None:
    for (kind, _), server in servers.items():
        await drive_http(server.url, kind, warm, 1)
    for rnd in range(rounds):
        for kind in sorted({k for k, _ in servers}):
            runs = results.setdefault(f"{kind} {name}", {"runs": {}})["runs"]
            for rule in order(rnd):
                for c in callers:
                    server = servers[kind, rule]
                    cpu = cpu_seconds(server.proc.pid)
                    wall, lat = await drive_http(server.url, kind, prompts, c)
                    cpu = cpu_seconds(server.proc.pid) - cpu
                    record(runs, f"{rule}/{c}", len(prompts), wall, lat, cpu)
                    log(f"  {kind} {name} {rule} callers={c}: {len(prompts) / wall:.2f}/s")


# --- report ---


def agreement(ref: list[float], other: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"max_dp": max(abs(a - b) for a, b in zip(ref, other, strict=True))}
    for share in (0.25, 0.5, 0.75):
        t = pct(ref, 1 - share)
        same = sum((a >= t) == (b >= t) for a, b in zip(ref, other, strict=True))
        out[f"{int(share * 100)}%"] = same / len(ref)
    return out


def rate(run: dict[str, Any]) -> float:
    return statistics.median(run["rates"])


def before_after(rows: dict[str, dict[str, Any]], callers: list[int]) -> None:
    """One table: each path, configuration and caller count under the old and the new rule."""
    print(
        "\n| path | configuration | callers | old prompts/s | new prompts/s | new ÷ old "
        "| old ÷ 1 caller | new ÷ 1 caller | old p50 ms | new p50 ms | old CPU ms/prompt "
        "| new CPU ms/prompt | old padding | new padding |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, res in rows.items():
        path, _, name = label.rpartition(" ")
        runs = res["runs"]
        for c in callers:
            old, new = runs.get(f"old/{c}"), runs.get(f"new/{c}")
            if not old or not new:
                continue
            one_old, one_new = runs.get("old/1"), runs.get("new/1")
            cells = [
                f"{rate(old):.2f}",
                f"{rate(new):.2f}",
                f"{rate(new) / rate(old):.2f}",
                f"{rate(old) / rate(one_old):.2f}" if one_old else "-",
                f"{rate(new) / rate(one_new):.2f}" if one_new else "-",
                f"{1000 * statistics.median(old['lat']):.0f}",
                f"{1000 * statistics.median(new['lat']):.0f}",
                f"{statistics.median(old['cpu_ms']):.0f}",
                f"{statistics.median(new['cpu_ms']):.0f}",
                f"{statistics.mean(old['waste']):.1%}" if old["waste"] else "-",
                f"{statistics.mean(new['waste']):.1%}" if new["waste"] else "-",
            ]
            print(f"| {path} | {name} | {c} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=64, help="prompts per run (default 64)")
    ap.add_argument("--callers", default="1,4,16")
    ap.add_argument("--dtypes", default="float32,int8", help=f"from {','.join(CONFIGS)}")
    ap.add_argument("--rounds", type=int, default=2, help="ABAB rounds of old and new (default 2)")
    ap.add_argument(
        "--through",
        default="inprocess,service,gateway",
        help="inprocess (LocalClassifier), service (HTTP /predict), gateway (chat completions)",
    )
    ap.add_argument("--quick", action="store_true", help="24 prompts, callers 1,16, in-process")
    ap.add_argument("--no-baseline", action="store_true", help="skip RouteLLM's BERTRouter")
    ap.add_argument("--child", choices=("service", "gateway"), help=argparse.SUPPRESS)
    ap.add_argument("--rule", choices=RULES, default="new", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--config", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sys.exit(child(args.child, args.rule, args.port, args.config))
    if args.quick:
        args.prompts, args.callers, args.through = 24, "1,16", "inprocess"
    callers = [int(c) for c in args.callers.split(",")]
    names = [d for d in args.dtypes.split(",") if d]
    through = [t for t in args.through.split(",") if t]
    unknown = set(names) - set(CONFIGS)
    if unknown:
        ap.error(f"unknown --dtypes {sorted(unknown)}: use {','.join(CONFIGS)}")
    if set(through) - {"inprocess", "service", "gateway"}:
        ap.error("--through takes inprocess, service and gateway")
    command = shlex.join([".venv/bin/python", "bench/classifier_bench.py", *sys.argv[1:]])
    print(f"command: `{command}`\n", flush=True)

    import torch

    from bench.prompts import make_prompts, summary

    started = time.perf_counter()
    checkpoint = ensure_checkpoints()
    prompts, counts = make_prompts(args.prompts + 4, checkpoint=checkpoint)
    warm, prompts, counts = prompts[args.prompts :], prompts[: args.prompts], counts[: args.prompts]
    print(f"prompts: {json.dumps(summary(counts))}")
    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}", flush=True)

    base = None if args.no_baseline else routellm(checkpoint, args.prompts, callers)
    results: dict[str, dict[str, Any]] = {}
    if "inprocess" in through:
        for name in names:
            log(f"{name} ...")
            results[f"in-process {name}"] = ours(
                name, checkpoint, prompts, counts, warm, callers, args.rounds
            )
    kinds = [k for k in ("service", "gateway") if k in through]
    if kinds:
        results.update(served(names, kinds, checkpoint, prompts, warm, callers, args.rounds))

    print(
        f"\nBatching rules before (old) and after (new), {args.rounds} ABAB rounds, "
        f"{len(prompts)} unique prompts a run; prompts/s and CPU ms/prompt (the serving process's "
        "user + system time, all threads: what a shared machine disturbs least) are medians "
        "over rounds; padding is the share of padded tokens that were padding:"
    )
    before_after(results, callers)
    if base:
        print("\nRouteLLM's BERTRouter on the same prompts, for scale:\n")
        print("| configuration | callers | prompts/s | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|")
        for c in callers:
            r = base["runs"][str(c)]
            print(
                f"| {base['label']} | {c} | {r['throughput_per_s']:.2f} | {r['p50_ms']:.0f} "
                f"| {r['p99_ms']:.0f} |"
            )
    ref = results.get("in-process float32", {}).get("p_strong")
    if ref:
        agreeing = {k: v for k, v in results.items() if v.get("p_strong") and v["p_strong"] != ref}
        if agreeing:
            print("\nDecision agreement with float32 (thresholds routing 25/50/75 % strong):\n")
            print("| configuration | 25 % strong | 50 % strong | 75 % strong | max abs ΔP |")
            print("|---|---:|---:|---:|---:|")
            for label, res in agreeing.items():
                a = agreement(ref, res["p_strong"])
                print(
                    f"| {label} | {a['25%']:.1%} | {a['50%']:.1%} | {a['75%']:.1%} "
                    f"| {a['max_dp']:.2g} |"
                )
    print(
        "\nMean latency per prompt (ms) by token-length bucket, in-process, 1 caller, new rule:\n"
    )
    print("| configuration | " + " | ".join(label for _, _, label in BUCKETS) + " | load s |")
    print("|---|" + "---:|" * (len(BUCKETS) + 1))
    for label, res in results.items():
        run = res["runs"].get("new/1")
        if not run or "load_s" not in res:
            continue
        lat = run["lat"][-len(prompts) :]
        cells = []
        for lo, hi, _ in BUCKETS:
            xs = [t for t, n in zip(lat, counts, strict=True) if lo <= n <= hi]
            cells.append(f"{1000 * statistics.mean(xs):.0f}" if xs else "-")
        print(f"| {label} | " + " | ".join(cells) + f" | {res['load_s']:.1f} |")
    print(f"\nbench wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
