"""The first ONNX export says what it is doing, stage by stage, and frees the torch model it
loaded for the export (weights are never held twice)."""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoConfig, AutoModelForSequenceClassification

from classifier import ort


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_export_logs_each_stage_and_frees_the_torch_model(
    checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, dtype: str
) -> None:
    config = AutoConfig.from_pretrained(checkpoint)
    loaded: list[weakref.ref[Any]] = []

    def load_torch() -> Any:
        model = AutoModelForSequenceClassification.from_pretrained(
            checkpoint, attn_implementation="eager"
        ).eval()
        loaded.append(weakref.ref(model))
        return model

    with caplog.at_level(logging.INFO, logger="classifier.ort"):
        path = ort.prepare(
            checkpoint, config, dtype=dtype, cache_root=tmp_path, load_torch=load_torch
        )
    assert path.is_file()
    [model] = loaded
    assert model() is None, "the torch model loaded for the export is still referenced"

    lines = [r.getMessage() for r in caplog.records if r.name == "classifier.ort"]
    expected = ort.expected_export_s(checkpoint, dtype)
    stages = [
        f"exporting {checkpoint} to ONNX ({dtype}) into {path.parent}: a one-time cost, "
        f"expect about {expected} s",
        "ONNX export: loading the torch model",
        "ONNX export: tracing the graph",
        "ONNX export: traced in ",
        "ONNX export: fused and checked against torch in ",
        *(
            ["ONNX export: quantizing the weights to int8", "ONNX export: quantized in "]
            if dtype == "int8"
            else []
        ),
        f"ONNX export of {checkpoint} done in ",
    ]
    assert len(lines) == len(stages), lines
    for line, stage in zip(lines, stages, strict=True):
        assert line.startswith(stage), (line, stage)
    assert lines[-1].endswith(f"cache written to {path.parent}")

    # A second start finds the cache: no export, no progress lines.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="classifier.ort"):
        again = ort.prepare(
            checkpoint, config, dtype=dtype, cache_root=tmp_path, load_torch=load_torch
        )
    assert again == path
    assert len(loaded) == 1
    assert not [r for r in caplog.records if r.name == "classifier.ort"]


def test_expected_export_time_grows_with_the_weights(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    with weights.open("wb") as f:
        f.truncate(2_000_000)  # sparse: the size is what counts
    small = ort.expected_export_s(tmp_path, "float32")
    with weights.open("wb") as f:
        f.truncate(1_100_000_000)
    base = ort.expected_export_s(tmp_path, "float32")
    assert small == 1
    assert base == 66
    assert ort.expected_export_s(tmp_path, "int8") == 99
