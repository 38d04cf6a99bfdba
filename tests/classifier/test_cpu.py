"""CPU feature detection and the dtype `ROUTELLM_BERT_DTYPE=auto` picks from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.cpu import CpuFeatures, CpuFlag, choose_dtype, detect_cpu_features, parse_cpuinfo
from classifier.settings import Runtime

# Abridged /proc/cpuinfo of the machines the issue names (flags kept in their kernel order).
ZEN5 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx f16c avx2 avx512f avx512dq avx512cd avx512bw avx_vnni avx512_bf16 \
avx512vbmi avx512_vnni avx512_bitalg
processor\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2
"""
SAPPHIRE_RAPIDS = (
    "model name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    "flags\t\t: avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8 avx_vnni\n"
)
CASCADE_LAKE = "model name\t: Intel(R) Xeon(R)\nflags\t\t: sse2 avx2 avx512f avx512_vnni\n"
COOPER_LAKE_NO_VNNI = "flags\t\t: avx2 avx512f avx512_bf16\n"  # hypothetical: no VNNI
ALDER_LAKE = "flags\t\t: sse2 avx2 avx_vnni\n"
AVX2_ONLY = "model name\t: AMD EPYC 7B12\nflags\t\t: sse2 avx avx2 fma\n"
OLD = "flags\t\t: sse2 sse4_2 avx\n"


def features(*flags: CpuFlag) -> CpuFeatures:
    return CpuFeatures(frozenset(flags))


def test_parse_reads_the_first_processors_tracked_flags() -> None:
    parsed = parse_cpuinfo(ZEN5)
    assert parsed.known
    assert parsed.model == "AMD EPYC"
    assert parsed.flags == {"avx2", "avx512f", "avx_vnni", "avx512_bf16", "avx512_vnni"}
    assert parsed.describe() == "AVX2, AVX-512F, AVX512-VNNI, AVX-VNNI, AVX512-BF16"
    amx = parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert {"amx_tile", "amx_bf16", "amx_int8"} <= amx.flags
    assert parse_cpuinfo(OLD).describe() == "none of AVX2, AVX-512, VNNI, BF16, AMX"


def test_detect_reads_the_file_and_is_unknown_without_it(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CASCADE_LAKE)
    assert detect_cpu_features(cpuinfo).flags == {"avx2", "avx512f", "avx512_vnni"}
    missing = detect_cpu_features(tmp_path / "absent")
    assert not missing.known
    assert missing.flags == frozenset()
    assert missing.describe() == "unknown (no /proc/cpuinfo)"
    assert choose_dtype(missing, cuda=False).dtype == "float32"


@pytest.mark.parametrize(
    ("cpuinfo", "dtype", "via"),
    [
        (SAPPHIRE_RAPIDS, "bfloat16", "AMX-BF16"),
        # AVX512-BF16 with VNNI but no AMX: int8 measured twice bfloat16's speed there.
        (ZEN5, "int8", "AVX512-VNNI"),
        (COOPER_LAKE_NO_VNNI, "bfloat16", "AVX512-BF16"),
        (CASCADE_LAKE, "int8", "AVX512-VNNI"),
        (ALDER_LAKE, "int8", "AVX-VNNI"),
        (AVX2_ONLY, "float32", "no native"),
        (OLD, "float32", "no native"),
    ],
)
def test_auto_on_cpu_picks_the_native_fast_path(cpuinfo: str, dtype: str, via: str) -> None:
    choice = choose_dtype(parse_cpuinfo(cpuinfo), cuda=False)
    assert choice.dtype == dtype
    assert choice.reason.startswith(via)


@pytest.mark.parametrize("cpuinfo", [SAPPHIRE_RAPIDS, ZEN5, CASCADE_LAKE, AVX2_ONLY])
def test_auto_with_cuda_runs_float32_on_the_gpu(cpuinfo: str) -> None:
    choice = choose_dtype(parse_cpuinfo(cpuinfo), cuda=True)
    assert choice.dtype == "float32"
    assert choice.reason.startswith("CUDA")


@pytest.mark.parametrize(
    ("flags", "runtime", "dtype"),
    [
        # ONNX Runtime has no bfloat16 path here: int8 where VNNI helps, else float32.
        (("avx512_bf16", "avx512_vnni"), "onnxruntime", "int8"),
        (("amx_bf16",), "onnxruntime", "float32"),
        # torch's int8 is not the fast one: bfloat16 where native, else float32.
        (("avx512_bf16", "avx512_vnni"), "torch", "bfloat16"),
        (("amx_bf16", "amx_int8", "avx512_vnni"), "auto", "bfloat16"),
        (("avx512_vnni",), "torch", "float32"),
        (("avx2",), "torch", "float32"),
    ],
)
def test_auto_stays_within_the_runtime_asked_for(
    flags: tuple[CpuFlag, ...], runtime: Runtime, dtype: str
) -> None:
    assert choose_dtype(features(*flags), cuda=False, runtime=runtime).dtype == dtype


def test_onnxruntime_runtime_never_picks_cuda() -> None:
    assert choose_dtype(features("avx512_vnni"), cuda=True, runtime="onnxruntime").dtype == "int8"
