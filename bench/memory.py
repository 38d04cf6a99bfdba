"""Resident memory of the in-process classifier per dtype, with and without torch and the tokenizer.

    .venv/bin/python bench/memory.py              # ~2 min once the ONNX exports are cached

Each row is a fresh process (`--probe NAME`) that loads one configuration of the base-size
checkpoint (bench/.cache/bert-base-spread, built by bench/classifier_bench.py), classifies 16 of
bench/prompts.py's prompts and reports its resident memory (VmRSS) and peak (VmHWM) from
/proc/self/status. The rows:

- `<dtype> LocalClassifier`: what the gateway holds: transformers' tokenizer, torch imported,
  the runtime `auto` gives that dtype (ONNX Runtime for float32/int8, torch for bfloat16).
  `first start` rows export the ONNX model in the same process (cache emptied first), so they
  show whether the torch model used for the export is really gone afterwards.
- `<dtype> ONNX session + tokenizers`: the same ONNX file in a process that imports neither
  torch nor transformers (the `tokenizers` library alone tokenizes).
- `<dtype> ONNX session only`: the session, fed fixed token ids: the floor for that dtype.
- `python + torch + transformers, no model`: what importing them costs.

ONNX exports are cached in bench/.cache/onnx, shared with bench/classifier_bench.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHECKPOINT = ROOT / "bench" / ".cache" / "bert-base-spread"
ONNX_CACHE = ROOT / "bench" / ".cache" / "onnx"
PROBES = (
    "imports",
    "float32-first-start",
    "float32",
    "float32-session-tokenizers",
    "float32-session",
    "int8",
    "int8-session-tokenizers",
    "int8-session",
    "bfloat16",
)
LABELS = {
    "imports": "python + torch + transformers, no model",
    "float32-first-start": "float32 LocalClassifier, first start (exports ONNX in-process)",
    "float32": "float32 LocalClassifier (ONNX Runtime; torch, transformers loaded)",
    "float32-session-tokenizers": "float32 ONNX session + tokenizers (no torch, no transformers)",
    "float32-session": "float32 ONNX session only",
    "int8": "int8 LocalClassifier (ONNX Runtime; torch, transformers loaded)",
    "int8-session-tokenizers": "int8 ONNX session + tokenizers (no torch, no transformers)",
    "int8-session": "int8 ONNX session only",
    "bfloat16": "bfloat16 LocalClassifier (torch)",
}


def memory() -> dict[str, float]:
    """VmRSS and VmHWM of this process, in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return {"rss_mb": fields["VmRSS"], "peak_mb": fields["VmHWM"]}


def prompts(n: int = 16) -> list[str]:
    from bench.prompts import make_prompts

    texts, _ = make_prompts(n, checkpoint=CHECKPOINT)
    return texts


def cached_onnx(dtype: str) -> Path:
    """The newest cached export for `dtype` (`ort.cache_key` would import torch to name it)."""
    found = sorted(
        ONNX_CACHE.glob(f"{CHECKPOINT.name}-{dtype}-*/model.onnx"), key=lambda p: p.stat().st_mtime
    )
    if not found:
        raise SystemExit(f"no cached {dtype} export in {ONNX_CACHE}: run the {dtype} probe first")
    return found[-1]


def probe(name: str) -> dict[str, Any]:
    texts = prompts()  # tokenizers only: loaded before anything else in every probe
    if name == "imports":
        import torch  # noqa: F401
        import transformers  # noqa: F401

        return memory()
    dtype = name.split("-", maxsplit=1)[0]
    if "session" in name:
        import numpy as np

        from classifier.ort import OrtSession

        session = OrtSession.open(cached_onnx(dtype), threads=2)
        if "tokenizers" in name:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(CHECKPOINT / "tokenizer.json"))
            for text in texts:
                ids = np.array([tok.encode(text).ids], dtype=np.int64)
                session.logits(ids, np.ones_like(ids))
        else:
            ids = np.full((4, 256), 5, dtype=np.int64)
            session.logits(ids, np.ones_like(ids))
        assert "torch" not in sys.modules, "the session-only probes must not import torch"
        return memory()
    import asyncio

    from classifier.local import LocalClassifier
    from classifier.settings import ClassifierSettings

    cache = ONNX_CACHE
    if name.endswith("first-start"):
        cache = Path(tempfile.mkdtemp(prefix="memory-onnx-"))
    settings = ClassifierSettings(
        model=str(CHECKPOINT),
        dtype=dtype,  # type: ignore[arg-type]
        device="cpu",
        cache_size=0,
        onnx_cache_dir=str(cache),
    )
    classifier = LocalClassifier.load(settings)

    async def run() -> None:
        for text in texts:
            await classifier.classify([text])
        await classifier.aclose()

    asyncio.run(run())
    result = {**memory(), "runtime": classifier.runtime}
    if cache != ONNX_CACHE:
        shutil.rmtree(cache, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--probe", choices=PROBES, help="measure one configuration in this process")
    ap.add_argument("--only", default=",".join(PROBES), help="probes to run, comma-separated")
    args = ap.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe)))
        return
    if not (CHECKPOINT / "model.safetensors").exists():
        raise SystemExit(f"{CHECKPOINT} is missing: run bench/classifier_bench.py --quick first")
    print("| configuration | resident MB | peak MB |")
    print("|---|---:|---:|")
    for name in args.only.split(","):
        done = subprocess.run(
            [sys.executable, __file__, "--probe", name],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if done.returncode != 0:
            print(f"| {LABELS[name]} | failed: {done.stderr.strip().splitlines()[-1:]} | |")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {LABELS[name]} | {row['rss_mb']:.0f} | {row['peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
