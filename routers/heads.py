"""Heads: from a prompt's embedding to each model's predicted quality, the probability that its
answer is good. Labels are a matrix with one column per model: 1/0 or a 0–1 score, NaN where
that model's answer to that prompt is unknown.

- `KnnHead`: the mean label of the `k` nearest training prompts (cosine; at most √n of n
  prompts), per model, pulled
  towards the model's overall mean by `prior_weight` pseudo-neighbours. `add` takes new
  labelled prompts at once, with no refit: the head a router that learns from traffic grows.
- `LinearHead`: one logistic regression per model (scikit-learn), L2-regularised.

Both save to and load from a few arrays (`arrays`, `from_arrays`), stored as `head.npz`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol

import numpy as np

HEAD_FILE = "head.npz"


class Head(Protocol):
    """What the embedding router asks of a head."""

    kind: ClassVar[str]

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """(texts × models) predicted quality in [0, 1]."""
        ...

    def arrays(self) -> dict[str, np.ndarray]: ...


class KnnHead:
    """k nearest neighbours over the training prompts' embeddings."""

    kind: ClassVar[str] = "knn"

    def __init__(
        self, points: np.ndarray, labels: np.ndarray, *, k: int = 64, prior_weight: float = 4.0
    ) -> None:
        if points.ndim != 2 or labels.ndim != 2 or len(points) != len(labels) or not len(points):
            raise ValueError("points and labels must be non-empty matrices with one row each")
        self.points = np.ascontiguousarray(points, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.float32)
        self.k = k
        self.prior_weight = prior_weight

    @property
    def prior(self) -> np.ndarray:
        """Each model's mean label over every prompt where it is known (0.5 when none is)."""
        known = ~np.isnan(self.labels)
        total = np.where(known, self.labels, 0.0).sum(0)
        count = known.sum(0)
        return np.where(count > 0, total / np.maximum(count, 1), 0.5).astype(np.float32)

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        # Never more neighbours than the square root of the prompts: with little data a
        # large k would average everything into the prior.
        k = max(1, min(self.k, math.isqrt(len(self.points))))
        similarity = vectors @ self.points.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        found = self.labels[nearest]  # texts × k × models
        known = ~np.isnan(found)
        total = np.where(known, found, 0.0).sum(1)
        count = known.sum(1)
        out = (total + self.prior_weight * self.prior) / (count + self.prior_weight)
        return np.asarray(out, dtype=np.float32)

    def add(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        """Learn from new labelled prompts at once (their next neighbours see them)."""
        self.points = np.concatenate([self.points, np.asarray(vectors, dtype=np.float32)])
        self.labels = np.concatenate([self.labels, np.asarray(labels, dtype=np.float32)])

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "points": self.points,
            "labels": self.labels,
            "k": np.asarray(self.k),
            "prior_weight": np.asarray(self.prior_weight),
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> KnnHead:
        return cls(
            arrays["points"],
            arrays["labels"],
            k=int(arrays["k"]),
            prior_weight=float(arrays["prior_weight"]),
        )

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: np.ndarray, *, k: int = 64) -> KnnHead:
        return cls(vectors, labels, k=k)


class LinearHead:
    """One logistic regression per model: quality = sigmoid(x · w_m + b_m)."""

    kind: ClassVar[str] = "linear"

    def __init__(self, weights: np.ndarray, bias: np.ndarray) -> None:
        self.weights = np.asarray(weights, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        logits = vectors @ self.weights + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "bias": self.bias}

    @classmethod
    def from_arrays(cls, arrays: Any) -> LinearHead:
        return cls(arrays["weights"], arrays["bias"])

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: np.ndarray, *, c: float = 1.0) -> LinearHead:
        """Fit each model's regression on the prompts where its label is known; a 0–1 score
        counts as that share of a good answer (two weighted rows)."""
        from sklearn.linear_model import LogisticRegression

        dim, models = vectors.shape[1], labels.shape[1]
        weights = np.zeros((dim, models), dtype=np.float32)
        bias = np.zeros(models, dtype=np.float32)
        for m in range(models):
            known = ~np.isnan(labels[:, m])
            x, y = vectors[known], labels[known, m]
            both = np.concatenate([x, x])
            target = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
            weight = np.concatenate([y, 1.0 - y])
            keep = weight > 0
            if len(np.unique(target[keep])) < 2:
                # One class only: nothing to separate, so the model's mean is the prediction.
                mean = float(y.mean()) if len(y) else 0.5
                clipped = min(max(mean, 1e-3), 1 - 1e-3)
                bias[m] = np.log(clipped / (1 - clipped))
                continue
            model = LogisticRegression(C=c, max_iter=1000)
            model.fit(both[keep], target[keep], sample_weight=weight[keep])
            weights[:, m] = model.coef_[0]
            bias[m] = model.intercept_[0]
        return cls(weights, bias)


HEADS: dict[str, Any] = {KnnHead.kind: KnnHead, LinearHead.kind: LinearHead}
"""Head kinds by the name a router directory's manifest gives (`head`)."""
