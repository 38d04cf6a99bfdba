"""Fitting a many-model router's head on embedded prompts and their quality matrix.

    head = fit_head(HeadSpec("knn", k=96), vectors, labels)       # a `routers.heads` head

- `knn`: `routers.heads.KnnHead` as is: the mean quality of the `k` nearest training prompts,
  pulled towards each model's mean by `prior_weight` pseudo-neighbours.
- `linear`: `routers.heads.LinearHead`, one logistic regression per model, fitted jointly: each
  model's weights are a part every model shares (how hard the prompt is, for all of them) plus
  the model's own part (what it is better or worse at). The shared part learns from every
  model's labels and the own parts are regularised harder (`c_own` < `c_shared`), so a model
  with few labels leans on the others and the differences between models, which are what
  routing needs, are not drowned by the common difficulty. Saved as plain per-model weights:
  the served head is the ordinary `LinearHead`.

`DEFAULT` is the head `train` fits unless told otherwise, chosen by measurement:
`bench/many_models.py` fits every candidate (kNN over k and the prior weight, the linear head over
its two strengths, independent logistic regressions) on MMLU-Pro's 14 priced models and ranks
them by AIQ on a validation fifth of the training side. On the random split kNN with about the
most neighbours `KnnHead` allows (√ of the training prompts: 98 for 9,626) and a prior of 2/3 of
them ranked first; it also fits in no time. Held out, the candidates' AIQs lie within about
0.005 of each other, inside their intervals (the linear head with `c_own` 0.05 was 0.004 ahead),
but on two models (RouteLLM's MMLU, gpt-4 against Mixtral) kNN's APGR was 0.708 against the
linear head's 0.651: kNN is the default because it holds up for two models and for fourteen,
fits in no time and learns a new labelled prompt without a refit.
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass

import numpy as np

from routers.heads import Head, KnnHead, LinearHead

__all__ = ["DEFAULT", "HeadSpec", "fit_head", "fit_linear"]


@dataclass(frozen=True, slots=True)
class HeadSpec:
    """A head kind and its settings."""

    kind: str = "knn"
    """`knn` or `linear` (`routers.heads.HEADS`)."""
    _: KW_ONLY
    k: int = 96
    """knn: neighbours per prompt (`KnnHead` uses at most √ of the training prompts)."""
    prior_weight: float | None = None
    """knn: pseudo-neighbours at each model's overall mean; None: `prior_share` of the
    neighbours used."""
    prior_share: float = 2 / 3
    """knn: pseudo-neighbours per neighbour used, when `prior_weight` is None (so a small
    training set, whose k is cut to its square root, is not drowned by its prior)."""
    c_shared: float = 4.0
    """linear: inverse L2 strength of the part every model shares (scikit-learn's C)."""
    c_own: float = 0.05
    """linear: inverse L2 strength of each model's own part (0.05 measured best of 1, 0.25,
    0.05, 0.01, 0.002 on MMLU-Pro, both splits)."""

    def describe(self, head: Head | None = None) -> dict[str, float | int | str]:
        """The settings, with a fitted kNN head's own k and prior weight."""
        if self.kind == "knn" and isinstance(head, KnnHead):
            return {
                "kind": "knn",
                "k": used_k(self.k, len(head.points)),
                "prior_weight": head.prior_weight,
            }
        if self.kind == "knn":
            return {"kind": "knn", "k": self.k, "prior_weight": self.prior_weight or "auto"}
        return {"kind": "linear", "c_shared": self.c_shared, "c_own": self.c_own}


def used_k(k: int, prompts: int) -> int:
    """The neighbours `KnnHead` uses: k, at most the square root of the training prompts."""
    return max(1, min(k, math.isqrt(prompts)))


DEFAULT = HeadSpec()


def fit_head(spec: HeadSpec, vectors: np.ndarray, labels: np.ndarray) -> Head:
    """The head `spec` names, fitted on `vectors` (prompts × dim) and `labels` (prompts ×
    models, NaN unknown); `ValueError` for an unknown kind."""
    if spec.kind == "knn":
        prior = spec.prior_weight
        if prior is None:
            prior = spec.prior_share * used_k(spec.k, len(vectors))
        return KnnHead(vectors, labels, k=spec.k, prior_weight=prior)
    if spec.kind == "linear":
        return fit_linear(vectors, labels, c_shared=spec.c_shared, c_own=spec.c_own)
    raise ValueError(f"head {spec.kind!r} is not knn or linear")


def fit_linear(
    vectors: np.ndarray, labels: np.ndarray, *, c_shared: float, c_own: float
) -> LinearHead:
    """Logistic regressions, one per model, with weights `shared + own[m]` (see the module's
    docstring), by L-BFGS on the mean log-loss over the known cells plus the two L2 terms. A 0–1
    score is a soft target."""
    from scipy.optimize import minimize

    x = np.asarray(vectors, dtype=np.float64)
    known = ~np.isnan(labels)
    y = np.where(known, labels, 0.0).astype(np.float64)
    mask = known.astype(np.float64)
    n, dim = x.shape
    models = labels.shape[1]
    scale = 1.0 / max(float(mask.sum()) / models, 1.0)  # per model: a mean over its prompts
    prior = np.clip(y.sum(0) / np.maximum(mask.sum(0), 1), 1e-3, 1 - 1e-3)

    def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shared = theta[:dim]
        own = theta[dim : dim + dim * models].reshape(dim, models)
        return shared, own, theta[dim + dim * models :]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        shared, own, bias = unpack(theta)
        logits = x @ (shared[:, None] + own) + bias
        # log(1 + e^z) - y z, computed stably; unknown cells weigh nothing.
        loss = (np.logaddexp(0.0, logits) - y * logits) * mask
        residual = (1.0 / (1.0 + np.exp(-logits)) - y) * mask * scale
        grad_weights = x.T @ residual
        value = scale * loss.sum()
        value += 0.5 * (shared @ shared) / (c_shared * n)
        value += 0.5 * float((own * own).sum()) / (c_own * n)
        grad_shared = grad_weights.sum(1) + shared / (c_shared * n)
        grad_own = grad_weights + own / (c_own * n)
        gradient = np.concatenate([grad_shared, grad_own.ravel(), residual.sum(0)])
        return float(value), gradient

    start = np.zeros(dim + dim * models + models)
    start[dim + dim * models :] = np.log(prior / (1 - prior))
    found = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    shared, own, bias = unpack(found.x)
    return LinearHead((shared[:, None] + own).astype(np.float32), bias.astype(np.float32))
