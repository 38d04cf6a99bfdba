"""`ROUTELLM_BERT_DTYPE=auto` through the real loader: what the CPU's flags make it choose, the
start-up log line that says so, and `health()` reporting it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from classifier import local
from classifier.cpu import CpuFeatures, CpuFlag
from classifier.local import LocalClassifier
from classifier.settings import ClassifierSettings, SettingsError


def test_auto_is_a_valid_setting_and_float32_stays_the_default() -> None:
    assert ClassifierSettings.from_env({}).dtype == "float32"
    assert ClassifierSettings.from_env({"ROUTELLM_BERT_DTYPE": "auto"}).dtype == "auto"
    with pytest.raises(SettingsError, match="float32, bfloat16, int8 or auto"):
        ClassifierSettings.from_env({"ROUTELLM_BERT_DTYPE": "fp16"})


@pytest.mark.parametrize(
    ("flags", "dtype", "runtime", "described"),
    [
        (("avx2",), "float32", "onnxruntime", "AVX2"),
        (("avx2", "avx512f", "avx512_vnni"), "int8", "onnxruntime", "AVX2, AVX-512F, AVX512-VNNI"),
        (("avx2", "avx512_bf16", "avx512_vnni"), "int8", "onnxruntime", "AVX512-BF16"),
        (("avx2", "avx512_bf16", "amx_bf16"), "bfloat16", "torch", "AMX-BF16"),
    ],
)
async def test_auto_loads_the_dtype_the_cpu_flags_choose(
    checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    flags: tuple[CpuFlag, ...],
    dtype: str,
    runtime: str,
    described: str,
) -> None:
    monkeypatch.setattr(local, "detect_cpu_features", lambda: CpuFeatures(frozenset(flags)))
    settings = ClassifierSettings(
        model=str(checkpoint), dtype="auto", device="cpu", onnx_cache_dir=str(tmp_path)
    )
    with caplog.at_level(logging.INFO, logger="classifier.local"):
        classifier = LocalClassifier.load(settings)
    try:
        health = await classifier.health()
        assert (health["dtype"], health["runtime"]) == (dtype, runtime)
        assert isinstance(health["dtype_auto"], str)
        assert isinstance(health["cpu_features"], str)
        assert described in health["cpu_features"]
        [loaded] = [r.getMessage() for r in caplog.records if " loaded on " in r.getMessage()]
        assert f"({runtime}, {dtype} chosen by auto: {health['dtype_auto']}" in loaded
        assert loaded.endswith(f"CPU: {health['cpu_features']}")
        # the forced label survives whichever dtype was chosen
        [scores] = await classifier.classify(["prove that sqrt(2) is irrational"])
        assert scores.top[0] == "LABEL_2"
    finally:
        await classifier.aclose()


async def test_an_explicit_dtype_is_kept_and_the_cpu_still_reported(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        local, "detect_cpu_features", lambda: CpuFeatures(frozenset({"avx2", "avx512_bf16"}))
    )
    classifier = LocalClassifier.load(
        ClassifierSettings(model=str(checkpoint), dtype="float32", runtime="torch", device="cpu")
    )
    try:
        health = await classifier.health()
        assert (health["dtype"], health["dtype_auto"]) == ("float32", None)
        assert health["cpu_features"] == "AVX2, AVX512-BF16"
    finally:
        await classifier.aclose()
