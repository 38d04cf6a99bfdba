"""The first ONNX export says what it is doing, stage by stage; weights are never held twice
(the torch model loaded for the export is freed, and sessions map the weights file)."""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any

import numpy as np
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
    assert base == 77
    assert ort.expected_export_s(tmp_path, "int8") == 110


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_the_session_maps_the_weights_instead_of_copying_them(
    checkpoint: Path, tmp_path: Path, dtype: str
) -> None:
    config = AutoConfig.from_pretrained(checkpoint)

    def load_torch() -> Any:
        return AutoModelForSequenceClassification.from_pretrained(
            checkpoint, attn_implementation="eager"
        ).eval()

    path = ort.prepare(checkpoint, config, dtype=dtype, cache_root=tmp_path, load_torch=load_torch)
    weights = path.parent / "model.onnx.data"
    assert {p.name for p in path.parent.iterdir()} == {"model.onnx", weights.name, "meta.json"}
    assert weights.stat().st_size > path.stat().st_size  # the graph file holds no weights
    session = ort.OrtSession.open(path, threads=1)
    # Mapped, the weights are shared page cache the kernel can drop, and only the pages a
    # forward pass touches become resident; copied, all of them would sit on the heap.
    maps = Path("/proc/self/maps").read_text()
    assert str(weights.resolve()) in maps
    ids = np.array([[0, 5, 6, 2]], dtype=np.int64)
    assert session.logits(ids, np.ones_like(ids)).shape == (1, 3)
