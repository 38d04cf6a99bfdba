"""`routellm-gateway train --models ...`: a many-model router directory from a quality matrix, in
seconds once the prompts are embedded.

    held, kept = split_matrix(matrix, "category", holdout=0.2, seed=0)
    trained = train_router(kept, held, RouterTrainOptions(out=Path("routers/mmlu")))

The prompts are embedded once with the encoder (cached by content), the head is fitted on the
kept side, and the held-out side is predicted to write the model card. The directory holds
`router.json` (kind `embedding`, encoder, head, models: `routers.manifest`), `head.npz` (the
head's arrays) and `README.md` (the card: data, split, timings and the held-out figures), and
opens with `routers.registry.open_router(DIR)` as any router directory does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gateway.learning.embeddings import embed
from gateway.learning.evaluate import summarise
from gateway.learning.examples import Example
from gateway.learning.heads_fit import DEFAULT, HeadSpec, fit_head
from gateway.learning.matrix import Matrix
from gateway.learning.tradeoff import judge, references
from gateway.learning.train import split
from routers.encoders import DEFAULT_ENCODER, EmbeddingsApi
from routers.heads import HEAD_FILE, Head
from routers.manifest import Manifest, write_manifest

__all__ = [
    "RouterTrainOptions",
    "Trained",
    "held_out_figures",
    "split_matrix",
    "split_rows",
    "train_router",
]

CARD = "README.md"


@dataclass(frozen=True, slots=True)
class RouterTrainOptions:
    out: Path
    encoder: str = DEFAULT_ENCODER
    head: HeadSpec = DEFAULT
    split: str = "random"
    holdout: float = 0.2
    seed: int = 0
    columns: tuple[str, ...] = ()
    """The data's column for each model (the card says which became which name)."""
    prices: np.ndarray | None = None
    """Blended prices of the models, for the card's accuracy-cost figures (None: none)."""
    cache_dir: Path | None = None
    progress: bool = True
    embeddings: EmbeddingsApi | None = None
    """The embeddings API a `remote:<model>` encoder is called on."""


@dataclass(frozen=True, slots=True)
class Trained:
    manifest: Manifest
    figures: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def split_rows(matrix: Matrix, key: str, holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """(held-out rows, kept rows) exactly as `train`'s split (`gateway.learning.train.split`):
    at random, or whole groups of a key such as `category`, so `evaluate` can take the same
    side again."""
    # The split reads only each example's keys: stand-ins carry them, found again by identity.
    stand_ins = [Example(None, None, 0.0, 0.0, keys) for keys in matrix.keys]
    row = {id(e): i for i, e in enumerate(stand_ins)}
    held, kept = split(stand_ins, key, holdout, seed)
    return [row[id(e)] for e in held], [row[id(e)] for e in kept]


def split_matrix(matrix: Matrix, key: str, holdout: float, seed: int) -> tuple[Matrix, Matrix]:
    """(held out, kept): `split_rows`' two sides."""
    held, kept = split_rows(matrix, key, holdout, seed)
    return matrix.subset(held), matrix.subset(kept)


def held_out_figures(
    predicted: np.ndarray, held: Matrix, prices: np.ndarray | None, rounds: int = 200
) -> dict[str, Any]:
    """The card's figures on the held-out rows where every model is known: each model's
    accuracy, the router's at cost weight 0 (its best predicted model), the best single
    model's and the oracle's; for two models APGR (its 95 % interval), and with prices the
    accuracy-cost figures of `gateway.learning.tradeoff`."""
    complete = ~np.isnan(held.labels).any(axis=1)
    labels, guess = held.labels[complete], predicted[complete]
    out: dict[str, Any] = {"held_out": len(held.texts), "complete": int(complete.sum())}
    if not complete.any():
        return out
    singles = labels.mean(0)
    picked = labels[np.arange(len(labels)), guess.argmax(1)]
    out |= {
        "accuracy": {m: float(a) for m, a in zip(held.models, singles, strict=True)},
        "router_accuracy_at_weight_0": float(picked.mean()),
        "best_single_accuracy": float(singles.max()),
        "oracle_accuracy": float(labels.max(1).mean()),
    }
    if len(held.models) == 2 and singles[0] != singles[1]:
        s, w = (0, 1) if singles[0] > singles[1] else (1, 0)
        examples = [Example(None, None, float(r[s]), float(r[w])) for r in labels]
        report = summarise("router", guess[:, s] - guess[:, w], examples, 0.0, rounds)
        out |= {
            "strong": held.models[s],
            "apgr": report.curve.apgr,
            "apgr_ci": report.intervals["apgr"],
        }
    if prices is not None:
        refs = references(labels, prices, held.models)
        figures = judge("router", guess, labels, prices, rounds=rounds).figures
        out |= {"best_single": refs.models[refs.best], "tradeoff": figures}
    return out


def train_router(kept: Matrix, held: Matrix, options: RouterTrainOptions) -> Trained:
    """Embed, fit, judge on `held`, write the directory; returns its manifest and figures."""
    started = time.perf_counter()
    vectors = embed(
        kept.texts + held.texts,
        options.encoder,
        cache_dir=options.cache_dir,
        progress=options.progress,
        api=options.embeddings,
    )
    embedded = time.perf_counter()
    head = fit_head(options.head, vectors[: len(kept.texts)], kept.labels)
    fitted = time.perf_counter()
    predicted = head.predict(vectors[len(kept.texts) :])
    figures = held_out_figures(predicted, held, options.prices)
    seconds = {"embed": embedded - started, "fit": fitted - embedded}
    card = {
        "trained_rows": len(kept.texts),
        "data": [list(f) for f in kept.files],
        "columns": dict(zip(kept.models, options.columns or kept.models, strict=True)),
        "split": {"by": options.split, "holdout": options.holdout, "seed": options.seed},
        "head": options.head.describe(head),
        "seconds": seconds,
        "held_out": figures,
    }
    manifest = write_router(options.out, head, kept.models, options.encoder, card)
    return Trained(manifest, figures, seconds)


def write_router(
    out: Path, head: Head, models: Sequence[str], encoder: str, card: dict[str, Any]
) -> Manifest:
    """Write a router directory: the head's arrays, the manifest, the model card."""
    out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = head.arrays()
    np.savez(out / HEAD_FILE, **arrays)
    manifest = write_manifest(
        out, Manifest("embedding", tuple(models), encoder, head.kind, card=card), [HEAD_FILE]
    )
    (out / CARD).write_text(model_card(manifest), encoding="utf-8")
    return manifest


def model_card(manifest: Manifest) -> str:
    """The directory's README.md: what it is, how to serve it, the held-out figures."""
    card = dict(manifest.card)
    figures = card.get("held_out", {})
    lines = [
        f"# Many-model router {manifest.version}",
        "",
        f"Kind `{manifest.kind}`: the sentence encoder `{manifest.encoder}` and a "
        f"`{manifest.head}` head predict, for each model, the probability that its answer is "
        "good; the gateway picks the model with the best predicted quality minus the cost "
        "weight times its relative price.",
        "",
        "Serve it: `routers: {NAME: {router: THIS_DIRECTORY, models: [...], cost_weight: W}}`.",
        "",
        f"Models: {', '.join(f'`{m}`' for m in manifest.models)}.",
        "",
        f"Trained on {card.get('trained_rows')} rows; split {json.dumps(card.get('split'))}; "
        f"head {json.dumps(card.get('head'))}; seconds {json.dumps(card.get('seconds'))}.",
        "",
        f"## Held-out figures ({figures.get('complete', 0)} rows with every model known, of "
        f"{figures.get('held_out', 0)} held out)",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    for key, value in figures.items():
        if key in ("held_out", "complete"):
            continue
        shown = (
            json.dumps(value, default=float) if isinstance(value, dict | list | tuple) else value
        )
        lines.append(f"| {key} | {shown} |")
    lines += ["", "Data files: " + ", ".join(f"`{f}` ({n} rows)" for f, n in card.get("data", []))]
    return "\n".join(lines) + "\n"
