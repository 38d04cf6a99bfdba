"""Fixtures for the classifier tests: a fake classifier and real loopback servers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from classifier.base import ClassifierError, Scores
from classifier.service_settings import ServiceSettings
from classifier.settings import ClassifierSettings

LABELS = ("LABEL_0", "LABEL_1", "LABEL_2")


def fake_scores(text: str) -> Scores:
    """Deterministic, text-dependent probabilities (sum to 1) for fakes and fake servers."""
    a = (len(text) % 7 + 1) / 10
    b = (len(text) % 3 + 1) / 10
    return Scores(LABELS, (a, b, round(1.0 - a - b, 10)))


class FakeClassifier:
    """A `Classifier` that answers `fake_scores`, records calls and can be told to fail."""

    name = "fake-model"

    def __init__(self) -> None:
        self.history: list[list[str]] = []
        self.errors: list[ClassifierError] = []
        self.closed = False

    def enqueue_error(self, error: ClassifierError) -> None:
        self.errors.append(error)

    async def classify(self, texts: Sequence[str]) -> list[Scores]:
        self.history.append(list(texts))
        if self.errors:
            raise self.errors.pop(0)
        return [fake_scores(t) for t in texts]

    async def health(self) -> dict[str, object]:
        return {"status": "ok", "model": self.name}

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def fake() -> FakeClassifier:
    return FakeClassifier()


@pytest.fixture
def checkpoint(checkpoint_factory: Callable[[int | None], Path]) -> Path:
    """A tiny checkpoint where LABEL_2 always wins."""
    return checkpoint_factory(2)


@pytest.fixture
def settings(checkpoint: Path) -> ClassifierSettings:
    return ClassifierSettings(model=str(checkpoint))


@pytest.fixture
def service_settings() -> ServiceSettings:
    """Small limits, so the service's 400 and 413 are easy to reach."""
    return ServiceSettings(max_inputs=8, max_body_bytes=4096)
