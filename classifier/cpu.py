"""The CPU's fast paths: which matrix instructions it has, and the dtype `auto` picks from them.

    features = detect_cpu_features()            # reads /proc/cpuinfo once; unknown elsewhere
    choice = choose_dtype(features, cuda=False, runtime="auto")
    choice.dtype, choice.reason                 # "int8", "AVX512-VNNI: ONNX Runtime int8 ..."

`ROUTELLM_BERT_DTYPE=auto` resolves through `choose_dtype`, a pure function of the features, so
the rule is tested over feature sets rather than over whatever CPU runs the tests:

- CUDA: float32 on the GPU, as an explicit float32 does (exact scores; a GPU pass is cheap).
- AMX-BF16: torch bfloat16, whose matrix products run on the AMX tiles.
- AVX512-VNNI, AVX-VNNI or AMX-INT8 (and no AMX-BF16): ONNX Runtime int8. On a CPU with
  AVX512-BF16 and VNNI but no AMX (AMD Zen 4/5, Intel Cooper Lake) int8 measured twice torch
  bfloat16's throughput (README, "Classifier speed"), so AVX512-BF16 alone does not pick bfloat16.
- AVX512-BF16 without VNNI: torch bfloat16.
- anything else, or features unknown: float32 (ONNX Runtime), RouteLLM's exact scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from classifier.settings import Dtype, Runtime

CpuFlag = Literal[
    "avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"
]
# Linux's /proc/cpuinfo names, in the order they are reported.
TRACKED_FLAGS: tuple[CpuFlag, ...] = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
_LABELS: dict[CpuFlag, str] = {
    "avx2": "AVX2",
    "avx512f": "AVX-512F",
    "avx512_vnni": "AVX512-VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX512-BF16",
    "amx_tile": "AMX-TILE",
    "amx_bf16": "AMX-BF16",
    "amx_int8": "AMX-INT8",
}
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True, slots=True)
class CpuFeatures:
    """The tracked instruction-set flags of this CPU; `known` is False where they could not be
    read (not Linux, no /proc), in which case `auto` assumes none of them."""

    flags: frozenset[CpuFlag]
    known: bool = True
    model: str | None = None

    @property
    def bf16(self) -> bool:
        """bfloat16 matrix products run natively (AMX tiles or AVX512-BF16 dot products)."""
        return "amx_bf16" in self.flags or "avx512_bf16" in self.flags

    @property
    def vnni(self) -> bool:
        """int8 dot products run natively (VNNI in AVX-512 or AVX, or AMX int8 tiles)."""
        return bool(self.flags & {"avx512_vnni", "avx_vnni", "amx_int8"})

    def describe(self) -> str:
        """One line for the start-up log and `/health`: e.g. `AVX2, AVX-512F, AVX512-VNNI`."""
        if not self.known:
            return "unknown (no /proc/cpuinfo)"
        names = [_LABELS[f] for f in TRACKED_FLAGS if f in self.flags]
        return ", ".join(names) if names else "none of AVX2, AVX-512, VNNI, BF16, AMX"


@dataclass(frozen=True, slots=True)
class DtypeChoice:
    """What `ROUTELLM_BERT_DTYPE=auto` resolved to, and why (logged and shown in `/health`)."""

    dtype: Dtype
    reason: str


def parse_cpuinfo(text: str) -> CpuFeatures:
    """The tracked flags from the text of /proc/cpuinfo (the first processor's `flags` line)."""
    flags: frozenset[CpuFlag] = frozenset()
    model: str | None = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip() or None
        elif key == "flags" and not flags:
            present = set(value.split())
            flags = frozenset(f for f in TRACKED_FLAGS if f in present)
    return CpuFeatures(flags, known=True, model=model)


def detect_cpu_features(path: Path = CPUINFO) -> CpuFeatures:
    """This machine's features from `path`; unknown (no flags) when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CpuFeatures(frozenset(), known=False)
    return parse_cpuinfo(text)


def choose_dtype(features: CpuFeatures, *, cuda: bool, runtime: Runtime = "auto") -> DtypeChoice:
    """The fastest dtype whose decisions stay close to float32's, for this hardware and the
    runtime the settings allow (`onnxruntime` has no bfloat16; `torch` int8 gains little)."""
    if cuda and runtime != "onnxruntime":
        return DtypeChoice("float32", "CUDA: float32 on the GPU keeps RouteLLM's exact scores")
    if "amx_bf16" in features.flags and runtime != "onnxruntime":
        return DtypeChoice("bfloat16", "AMX-BF16: torch bfloat16 runs on the AMX tiles")
    if features.vnni and runtime != "torch":
        int8_flags: tuple[CpuFlag, ...] = ("avx512_vnni", "avx_vnni", "amx_int8")
        via = next(_LABELS[f] for f in int8_flags if f in features.flags)
        return DtypeChoice("int8", f"{via}: ONNX Runtime int8 runs natively on this CPU")
    if features.bf16 and runtime != "onnxruntime":
        return DtypeChoice("bfloat16", "AVX512-BF16: torch bfloat16 runs natively on this CPU")
    if not features.known:
        return DtypeChoice("float32", "CPU features unknown: float32")
    return DtypeChoice("float32", "no native bfloat16 or int8 on this CPU: float32")


__all__ = [
    "CPUINFO",
    "TRACKED_FLAGS",
    "CpuFeatures",
    "CpuFlag",
    "DtypeChoice",
    "choose_dtype",
    "detect_cpu_features",
    "parse_cpuinfo",
]
