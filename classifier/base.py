"""The classifier interface shared by the in-process model, the remote client and the service.

A classifier turns texts into `Scores`: one probability per label, in label order. RouteLLM's
`routellm/bert_gpt4_augmented` has three labels: LABEL_0 (the strong model wins), LABEL_1 (tie)
and LABEL_2 (the weak model wins).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

ROUTELLM_LABELS = ("LABEL_0", "LABEL_1", "LABEL_2")
"""The labels of `routellm/bert_gpt4_augmented`, in model order: what a remote classifier must
answer with."""


class ClassifierError(Exception):
    """The classifier could not score a text: a remote service failed, timed out or answered
    something unreadable, or the local model failed. The gateway routes to its fallback model."""


class ClassifierUnavailable(ClassifierError):
    """The classifier cannot be used at all (missing model, not loaded yet, remote down)."""


def first_line(exc: BaseException) -> str:
    """An exception's first line, at most 200 characters, for one-line error messages."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


@dataclass(frozen=True, slots=True)
class Scores:
    """Probabilities for every label of one text, in the model's label order."""

    labels: tuple[str, ...]
    probs: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.probs) or not self.labels:
            raise ValueError("labels and probs must be non-empty and of equal length")

    @property
    def top(self) -> tuple[str, float]:
        """The winning label and its probability (the first label wins a tie)."""
        best = max(range(len(self.probs)), key=self.probs.__getitem__)
        return self.labels[best], self.probs[best]

    def get(self, label: str) -> float:
        """The probability of `label`; KeyError when the model has no such label."""
        try:
            return self.probs[self.labels.index(label)]
        except ValueError:
            raise KeyError(label) from None

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.labels, self.probs, strict=True))

    def ranked(self) -> list[tuple[str, float]]:
        """(label, probability) pairs, highest first: the Hugging Face response order."""
        return sorted(zip(self.labels, self.probs, strict=True), key=lambda p: -p[1])


@runtime_checkable
class Classifier(Protocol):
    """Anything that scores texts. Implementations batch, cache and thread behind this call."""

    @property
    def name(self) -> str:
        """The model id or URL, for `/health` and logs."""
        ...

    async def classify(self, texts: Sequence[str]) -> list[Scores]:
        """One `Scores` per text, in order. Raises `ClassifierError` when it cannot."""
        ...

    async def health(self) -> dict[str, object]:
        """A small JSON-able report: ready or not, and why."""
        ...

    async def aclose(self) -> None:
        """Release threads, models and connections."""
        ...
