"""Shared fixtures: tiny generated XLM-RoBERTa checkpoints (no hub access)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from classifier import ort
from classifier.synthetic import build_checkpoint


@pytest.fixture(scope="session")
def checkpoint_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int | None], Path]:
    """`checkpoint_factory(label)` -> a tiny checkpoint whose head makes LABEL_<label> win
    (None: random head). Built once per label per test session."""
    built: dict[int | None, Path] = {}

    def make(winning_label: int | None = None) -> Path:
        if winning_label not in built:
            path = tmp_path_factory.mktemp(f"bert-label{winning_label}")
            built[winning_label] = build_checkpoint(path, winning_label=winning_label)
        return built[winning_label]

    return make


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX export cache for the session: tests that load the same checkpoint share it."""
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A CLI run in-process configures logging onto the stderr pytest captured for that test;
    put the root logger back, so later tests' lines never reach a closed capture."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.fixture(autouse=True)
def _onnx_cache_in_tmp(onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings without `onnx_cache_dir` export here, never under the user's home."""
    monkeypatch.setattr(ort, "default_cache_root", lambda: onnx_cache)
