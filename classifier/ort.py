"""The ONNX Runtime backend of the in-process classifier: export once, cache on disk, reuse.

On CPU, ONNX Runtime with its BERT fusions (one fused Attention / SkipLayerNorm / BiasGelu node
per block) runs the classifier about twice as fast as torch in float32, and its int8 dynamic
quantization about three and a half times. A classifier reading only its first token runs its
last layer after attention for that token alone (`classifier.first_token`). Exporting, fusing
and quantizing a base-size model takes minutes, so the result is cached under one directory per
model identity and dtype:

    path = prepare(model_dir, config, dtype="int8", cache_root=root, load_torch=load_eager_model)
    session = OrtSession.open(path, threads=2)
    logits = session.logits(input_ids, attention_mask)      # numpy int64 in, float32 out

The cache key hashes the model directory's config and weight files (path, size, mtime), the dtype
and the torch / transformers / onnxruntime versions, so a changed model or upgraded exporter makes
a fresh entry. Entries are built in a temporary directory beside the cache and renamed into place,
so a start-up killed mid-export never leaves a half-written entry behind.

A first export logs each stage (started, with the duration to expect; traced; fused; quantized;
cache written) so a first start does not look hung. The torch model loaded for the export is
freed, and its memory handed back to the OS, before the session opens: weights are never held
twice.

Failures surface as `OnnxExportError`; `classifier.local` decides whether that falls back to torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Bumped whenever what an entry holds changes, so old entries are never read as new ones.
_FORMAT = 3
_MODEL_FILE = "model.onnx"
_META_FILE = "meta.json"
_IDENTITY_FILES = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# Weights always live beside the graph (`model.onnx.data`): ONNX Runtime then maps that file
# instead of copying it onto the heap, so a session holds only the pages it touches (the
# base-size model: ~0.4 GB resident instead of ~1.3 GB, and no 1.9 GB peak while loading;
# most of its 1.1 GB is a 250k-row embedding table of which a prompt touches a few rows).
# protobuf also cannot hold a single file above 2 GiB.
_WEIGHTS_FILE = "model.onnx.data"
# The fused float32 graph must reproduce torch's logits; anything further off is a broken export.
_EXPORT_TOLERANCE = 1e-3
# Export time per GB of weights on a 2-core CPU (measured on the base-size model, see README),
# used for the duration a first start announces; int8's quantization adds about half again.
_EXPORT_S_PER_GB = 70.0
_QUANTIZE_S_PER_GB = 30.0


class OnnxExportError(Exception):
    """The model could not be exported, fused, quantized or opened with ONNX Runtime."""


def default_cache_root() -> Path:
    """`~/.cache/routellm-gateway/onnx`, used when `ROUTELLM_BERT_CACHE_DIR` is not set."""
    return Path.home() / ".cache" / "routellm-gateway" / "onnx"


def cache_key(model_dir: Path, dtype: str) -> str:
    """A directory name naming the model and dtype, ending in a hash of everything that shapes
    the exported graph: model file identities, dtype and library versions."""
    import onnxruntime
    import torch
    import transformers

    model_dir = model_dir.resolve()
    files = []
    for name in _IDENTITY_FILES:
        path = model_dir / name
        if path.exists():
            stat = path.stat()  # follows the hub cache's symlinks to the blobs
            files.append([name, stat.st_size, stat.st_mtime_ns])
    identity = {
        "format": _FORMAT,
        "model_dir": str(model_dir),
        "files": files,
        "dtype": dtype,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_dir.name)[:40]
    return f"{readable}-{dtype}-{digest}"


def prepare(
    model_dir: Path,
    config: Any,
    *,
    dtype: str,
    cache_root: Path,
    load_torch: Callable[[], Any],
) -> Path:
    """The cached ONNX file for this model and dtype, exporting it first when missing.

    `load_torch()` returns the transformers model (eager attention, eval mode); it is only
    called on a cache miss. Raises `OnnxExportError`."""
    entry = cache_root / cache_key(model_dir, dtype)
    model_path = entry / _MODEL_FILE
    if all((entry / name).is_file() for name in (_META_FILE, _MODEL_FILE, _WEIGHTS_FILE)):
        return model_path
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_root))
    except OSError as exc:
        raise OnnxExportError(f"cannot write the ONNX cache {cache_root}: {exc}") from exc
    try:
        started = time.perf_counter()
        logger.info(
            "exporting %s to ONNX (%s) into %s: a one-time cost, expect about %d s on a 2-core "
            "CPU; later starts reuse it",
            model_dir,
            dtype,
            entry,
            expected_export_s(model_dir, dtype),
        )
        meta = _build(tmp, config, dtype=dtype, load_torch=load_torch)
        release_memory()
        meta["export_s"] = round(time.perf_counter() - started, 1)
        (tmp / _META_FILE).write_text(json.dumps(meta, indent=2))
        try:
            os.rename(tmp, entry)
        except OSError:
            # Another process finished the same entry first (or a broken one is in the way).
            if not (entry / _META_FILE).is_file():
                shutil.rmtree(entry, ignore_errors=True)
                os.rename(tmp, entry)
        logger.info(
            "ONNX export of %s done in %.1f s; cache written to %s",
            model_dir,
            meta["export_s"],
            entry,
        )
        return model_path
    except OnnxExportError:
        raise
    except Exception as exc:
        raise OnnxExportError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _quiet_logs(level: int = logging.INFO) -> Iterator[None]:
    """The fusion optimizer and quantizer log every node at INFO (the quantizer on the root
    logger): silence INFO and below for the export, which only runs during start-up."""
    previous = logging.root.manager.disable
    logging.disable(max(previous, level))
    try:
        yield
    finally:
        logging.disable(previous)


def expected_export_s(model_dir: Path, dtype: str) -> int:
    """A rough first-export duration for the log, from the size of the model's weight files."""
    weights = sum(
        path.stat().st_size
        for pattern in ("*.safetensors", "*.bin")
        for path in model_dir.glob(pattern)
        if path.is_file()
    )
    per_gb = _EXPORT_S_PER_GB + (_QUANTIZE_S_PER_GB if dtype == "int8" else 0.0)
    return max(1, round(weights / 1e9 * per_gb))


def release_memory() -> None:
    """Collect cycles and hand freed heap pages back to the OS (glibc's `malloc_trim`): without
    it the freed torch weights of an export stay in the process's resident memory."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def discard(model_path: Path) -> None:
    """Remove the cache entry holding `model_path` (it failed to open), so it is rebuilt."""
    shutil.rmtree(model_path.parent, ignore_errors=True)


def _build(tmp: Path, config: Any, *, dtype: str, load_torch: Callable[[], Any]) -> dict[str, Any]:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    from classifier.first_token import first_token_only

    stage = time.perf_counter()
    logger.info("ONNX export: loading the torch model")
    model = load_torch()
    logger.info("ONNX export: tracing the graph")
    sample = (
        torch.tensor([[0, 5, 6, 7, 8, 9, 2], [0, 5, 6, 2, 1, 1, 1]], dtype=torch.int64),
        torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]], dtype=torch.int64),
    )
    raw = tmp / "raw.onnx"
    with warnings.catch_warnings(), torch.inference_mode(), _quiet_logs():
        # The TorchScript exporter warns about its own deprecation and traced branches; the
        # traced graph is checked against torch below, which is what matters.
        warnings.simplefilter("ignore")
        expected = model(input_ids=sample[0], attention_mask=sample[1]).logits.float().numpy()
        torch.onnx.export(
            _logits_only(model),
            sample,
            str(raw),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "seq"},
                "attention_mask": {0: "batch", 1: "seq"},
                "logits": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    del model
    release_memory()
    logger.info(
        "ONNX export: traced in %.1f s; fusing attention, layer norm and GELU nodes",
        time.perf_counter() - stage,
    )
    stage = time.perf_counter()
    fused = tmp / ("model_fp32.onnx" if dtype == "int8" else _MODEL_FILE)
    with warnings.catch_warnings(), _quiet_logs():
        warnings.simplefilter("ignore")
        # opt_level=0: only the Python fusions here; the session applies its graph
        # optimizations itself at load.
        optimized = optimizer.optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=0,
        )
        fusions = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
        first_token = first_token_only(optimized.model)
        optimized.save_model_to_file(str(fused), use_external_data_format=True)
    del optimized  # the whole graph with its weights: freed before the quantizer loads its own
    raw.unlink()
    for leftover in tmp.glob("*.data"):
        if leftover.name != fused.name + ".data":
            leftover.unlink()
    _check(fused, sample, expected)
    logger.info(
        "ONNX export: fused and checked against torch in %.1f s", time.perf_counter() - stage
    )
    if dtype == "int8":
        stage = time.perf_counter()
        logger.info("ONNX export: quantizing the weights to int8")
        # The quantizer's only warning suggests a pre-processing pass that does not apply here.
        with warnings.catch_warnings(), _quiet_logs(logging.WARNING):
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(fused),
                str(tmp / _MODEL_FILE),
                weight_type=QuantType.QInt8,
                # Keep tensors the quantizer cannot type (fused nodes' outputs) in float32.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                use_external_data_format=True,
            )
        for path in tmp.glob("model_fp32.onnx*"):
            path.unlink()
        logger.info("ONNX export: quantized in %.1f s", time.perf_counter() - stage)
    return {
        "dtype": dtype,
        "fusions": fusions,
        "first_token_only": first_token,
        "weights_file": _WEIGHTS_FILE,
    }


def _check(path: Path, sample: tuple[Any, Any], expected: np.ndarray) -> None:
    session = OrtSession.open(path, threads=1)
    got = session.logits(sample[0].numpy(), sample[1].numpy())
    error = float(np.max(np.abs(got - expected)))
    if not error <= _EXPORT_TOLERANCE:
        raise OnnxExportError(f"the fused ONNX graph disagrees with torch by {error:.2g}")


def _logits_only(model: Any) -> Any:
    """What gets traced: (input_ids, attention_mask) -> logits, nothing else."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    return LogitsOnly()


class OrtSession:
    """An ONNX Runtime inference session over an exported classifier. Thread-compatible: the
    batcher's single worker thread is its only caller."""

    def __init__(self, session: Any, path: Path) -> None:
        self._session = session
        self.path = path

    @classmethod
    def open(cls, path: Path, *, threads: int) -> OrtSession:
        """Load `path` with all graph optimizations, `threads` intra-op threads and no inter-op
        parallelism (one batch at a time). Raises `OnnxExportError`."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: fused-node warnings are expected noise
        # Idle intra-op threads would spin for the next run, starving the event loop and the
        # tokenizer on small machines: 16 callers on 2 cores ran ~25 % faster without it.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise OnnxExportError(f"cannot open {path}: {exc}") from exc
        return cls(session, path)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Float32 logits, one row per text."""
        out = self._session.run(
            ["logits"],
            {
                "input_ids": input_ids.astype(np.int64, copy=False),
                "attention_mask": attention_mask.astype(np.int64, copy=False),
            },
        )
        return np.asarray(out[0], dtype=np.float32)


__all__ = [
    "OnnxExportError",
    "OrtSession",
    "cache_key",
    "default_cache_root",
    "discard",
    "expected_export_s",
    "prepare",
    "release_memory",
]
