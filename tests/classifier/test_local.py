"""LocalClassifier: loads tiny generated checkpoints through the Auto* classes, offline."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from classifier.base import ClassifierUnavailable
from classifier.local import FIX_HINT, LocalClassifier
from classifier.settings import ClassifierSettings


async def test_loads_and_forced_label_wins(checkpoint: Path) -> None:
    classifier = LocalClassifier.load(ClassifierSettings(model=str(checkpoint)))
    try:
        assert classifier.name == str(checkpoint)
        assert classifier.labels == ("LABEL_0", "LABEL_1", "LABEL_2")
        scores = await classifier.classify(["Write a poem about the sea", "你好"])
        assert [s.top[0] for s in scores] == ["LABEL_2", "LABEL_2"]
        assert (await classifier.health())["status"] == "ok"
    finally:
        await classifier.aclose()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
async def test_every_dtype_gives_probabilities(checkpoint: Path, dtype: str) -> None:
    settings = ClassifierSettings(model=str(checkpoint), dtype=dtype, device="cpu")  # type: ignore[arg-type]
    classifier = LocalClassifier.load(settings)
    try:
        for scores in classifier.predict(["explain the integral of x", "a"]):
            assert math.isclose(sum(scores.probs), 1.0, abs_tol=1e-5)
            assert all(isinstance(p, float) for p in scores.probs)
            assert scores.top[0] == "LABEL_2"  # agrees with float32 on the forced label
        assert (await classifier.health())["dtype"] == dtype
    finally:
        await classifier.aclose()


async def test_long_text_is_truncated(checkpoint: Path) -> None:
    classifier = LocalClassifier.load(ClassifierSettings(model=str(checkpoint), max_length=64))
    try:
        [scores] = await classifier.classify(["word " * 10_000])
        assert scores.top[0] == "LABEL_2"
    finally:
        await classifier.aclose()


def test_missing_directory_is_one_line_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ClassifierUnavailable) as info:
        LocalClassifier.load(ClassifierSettings(model=str(tmp_path / "nope")))
    message = str(info.value)
    assert "does not exist" in message
    assert FIX_HINT in message
    assert "ROUTELLM_BERT_MODEL" in message
    assert "ROUTELLM_BERT_URL" in message
    assert "\n" not in message


def test_empty_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ClassifierUnavailable, match="cannot load classifier model") as info:
        LocalClassifier.load(ClassifierSettings(model=str(tmp_path)))
    assert "\n" not in str(info.value)


def test_not_a_sequence_classifier(
    checkpoint_factory: Callable[[int | None], Path], tmp_path: Path
) -> None:
    target = tmp_path / "masked-lm"
    shutil.copytree(checkpoint_factory(2), target)
    config = json.loads((target / "config.json").read_text())
    config["architectures"] = ["XLMRobertaForMaskedLM"]
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(ClassifierUnavailable, match="not a sequence classifier"):
        LocalClassifier.load(ClassifierSettings(model=str(target)))


def test_cuda_without_cuda_is_unavailable(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    with pytest.raises(ClassifierUnavailable, match="ROUTELLM_BERT_DEVICE='cuda'"):
        LocalClassifier.load(ClassifierSettings(model=str(checkpoint), device="cuda"))
