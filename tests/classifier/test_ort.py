"""The ONNX Runtime backend: export through the Auto* classes, on-disk cache, torch fallback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from classifier import ort
from classifier.base import ClassifierUnavailable
from classifier.local import LocalClassifier
from classifier.settings import ClassifierSettings
from classifier.synthetic import corpus

TEXTS = ["explain the integral of x", "a", "你好", *corpus(6, seed=3), "word " * 300]


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every export (`ort._build` call) by its temporary directory."""
    calls: list[Path] = []
    real = ort._build

    def counting(tmp: Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(tmp)
        return real(tmp, *args, **kwargs)

    monkeypatch.setattr(ort, "_build", counting)
    return calls


def load(checkpoint: Path, cache: Path, **kwargs: Any) -> LocalClassifier:
    return LocalClassifier.load(
        ClassifierSettings(model=str(checkpoint), onnx_cache_dir=str(cache), **kwargs)
    )


@pytest.fixture
def random_checkpoint(checkpoint_factory: Callable[[int | None], Path]) -> Path:
    return checkpoint_factory(None)


@pytest.fixture
async def closing() -> AsyncIterator[list[LocalClassifier]]:
    """Classifiers a test loaded; closed after it."""
    opened: list[LocalClassifier] = []
    yield opened
    for classifier in opened:
        await classifier.aclose()


def test_auto_float32_runs_onnxruntime_with_torchs_scores(
    random_checkpoint: Path, tmp_path: Path, closing: list[LocalClassifier]
) -> None:
    onnx = load(random_checkpoint, tmp_path, cache_size=0)
    torch_ = load(random_checkpoint, tmp_path, runtime="torch", cache_size=0)
    closing += [onnx, torch_]
    assert (onnx.runtime, torch_.runtime) == ("onnxruntime", "torch")
    for got, want in zip(onnx.predict(TEXTS), torch_.predict(TEXTS), strict=True):
        assert got.labels == want.labels == ("LABEL_0", "LABEL_1", "LABEL_2")
        assert got.probs == pytest.approx(want.probs, abs=1e-5)
    # batched (padded) and one-by-one agree too
    alone = [onnx.predict([t])[0] for t in TEXTS]
    for a, b in zip(alone, onnx.predict(TEXTS), strict=True):
        assert a.probs == pytest.approx(b.probs, abs=1e-5)
    [entry] = tmp_path.iterdir()
    assert entry.name.startswith(f"{random_checkpoint.name}-float32-")
    assert {p.name for p in entry.iterdir()} == {"model.onnx", "model.onnx.data", "meta.json"}


async def test_int8_onnxruntime_keeps_the_forced_label(checkpoint: Path, tmp_path: Path) -> None:
    classifier = load(checkpoint, tmp_path, dtype="int8")
    try:
        assert classifier.runtime == "onnxruntime"
        assert [s.top[0] for s in await classifier.classify(TEXTS)] == ["LABEL_2"] * len(TEXTS)
        health = await classifier.health()
        assert (health["runtime"], health["dtype"], health["device"]) == (
            "onnxruntime",
            "int8",
            "cpu",
        )
    finally:
        await classifier.aclose()


def test_second_load_reuses_the_cache(
    checkpoint: Path, tmp_path: Path, builds: list[Path], closing: list[LocalClassifier]
) -> None:
    closing.append(load(checkpoint, tmp_path))
    assert len(builds) == 1
    [model] = tmp_path.glob("*/model.onnx")
    mtime = model.stat().st_mtime_ns
    closing.append(load(checkpoint, tmp_path))
    assert len(builds) == 1
    assert model.stat().st_mtime_ns == mtime
    closing.append(load(checkpoint, tmp_path, dtype="int8"))  # another dtype: its own entry
    assert len(builds) == 2
    assert not list(tmp_path.glob(".tmp-*"))


def test_corrupt_cache_entry_is_rebuilt(
    checkpoint: Path, tmp_path: Path, builds: list[Path], closing: list[LocalClassifier]
) -> None:
    closing.append(load(checkpoint, tmp_path))
    [model] = tmp_path.glob("*/model.onnx")
    model.write_bytes(b"not a protobuf")
    classifier = load(checkpoint, tmp_path)
    closing.append(classifier)
    assert classifier.runtime == "onnxruntime"
    assert len(builds) == 2
    assert classifier.predict(["a"])[0].top[0] == "LABEL_2"


@pytest.fixture
def broken_export(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(tmp: Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        (tmp / "model.onnx").write_bytes(b"half written")
        raise RuntimeError("exporter crashed\nwith a traceback")

    monkeypatch.setattr(ort, "_build", fail)


@pytest.mark.usefixtures("broken_export")
def test_failed_export_falls_back_to_torch_under_auto(
    checkpoint: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    closing: list[LocalClassifier],
) -> None:
    with caplog.at_level(logging.WARNING, logger="classifier.local"):
        classifier = load(checkpoint, tmp_path)
    closing.append(classifier)
    assert classifier.runtime == "torch"
    assert classifier.predict(["a"])[0].top[0] == "LABEL_2"
    assert "running on torch" in caplog.text
    assert "exporter crashed" in caplog.text
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left to be reused


@pytest.mark.usefixtures("broken_export")
def test_failed_export_is_unavailable_when_onnxruntime_is_required(
    checkpoint: Path, tmp_path: Path
) -> None:
    with pytest.raises(ClassifierUnavailable) as info:
        load(checkpoint, tmp_path, runtime="onnxruntime")
    message = str(info.value)
    assert "\n" not in message
    assert "exporter crashed" in message
    assert "ROUTELLM_BERT_RUNTIME=auto or torch" in message


def test_unwritable_cache_falls_back_to_torch(
    checkpoint: Path, tmp_path: Path, closing: list[LocalClassifier]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    classifier = load(checkpoint, blocker / "cache")
    closing.append(classifier)
    assert classifier.runtime == "torch"


def test_bfloat16_stays_on_torch(checkpoint: Path, closing: list[LocalClassifier]) -> None:
    classifier = LocalClassifier.load(ClassifierSettings(model=str(checkpoint), dtype="bfloat16"))
    closing.append(classifier)
    assert classifier.runtime == "torch"


def test_cache_key_follows_the_weights_and_dtype(checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(checkpoint, copy)
    key = ort.cache_key(copy, "float32")
    assert ort.cache_key(copy, "float32") == key
    assert ort.cache_key(copy, "int8") != key
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b"\0")
    assert ort.cache_key(copy, "float32") != key
