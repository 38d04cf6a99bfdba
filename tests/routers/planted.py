"""A router directory trained on planted data: four models, two topics. `mathy` is right on
maths and wrong on law, `lawyer` the reverse, `generalist` is right on most of both, `cheap`
on few. Built with the real packaged MiniLM encoder and the real heads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from routers.encoders import DEFAULT_ENCODER, LocalEncoder
from routers.heads import HEAD_FILE, HEADS
from routers.manifest import Manifest, write_manifest

MODELS = ("mathy", "lawyer", "generalist", "cheap")
MATHS = [
    f"{verb} the {thing} of {expr}"
    for verb in ("Compute", "Find", "Evaluate", "Determine")
    for thing in ("derivative", "integral", "limit")
    for expr in ("x^2 + 3x", "sin(x) * cos(x)", "e^(2x) / x")
]
LAW = [
    f"{verb} {topic} under {system}"
    for verb in ("Explain", "Summarise", "Is there liability for")
    for topic in ("breach of contract", "negligence in tort", "adverse possession of land")
    for system in ("English common law", "the US Constitution", "French civil law", "EU law")
]
MATHS_ROW = (1.0, 0.0, 0.7, 0.1)
LAW_ROW = (0.0, 1.0, 0.7, 0.1)
PRICES = {"mathy": (1.0, 2.0), "lawyer": (1.0, 2.0), "generalist": (5.0, 15.0), "cheap": (0.1, 0.2)}
"""USD per million input and output tokens, for the gateway's config."""


def labels() -> np.ndarray:
    rows = [MATHS_ROW] * len(MATHS) + [LAW_ROW] * len(LAW)
    matrix = np.asarray(rows, dtype=np.float32)
    matrix[::5, 3] = np.nan  # some answers of `cheap` are unknown
    return matrix


def build_router(directory: Path, encoder: LocalEncoder, head: str = "knn") -> Path:
    """Write a router directory (manifest, head) trained on the planted prompts."""
    directory.mkdir(parents=True, exist_ok=True)
    vectors = encoder.encode(MATHS + LAW)
    fitted = HEADS[head].fit(vectors, labels())
    np.savez(directory / HEAD_FILE, **fitted.arrays())
    write_manifest(
        directory,
        Manifest("embedding", MODELS, encoder=DEFAULT_ENCODER, head=head),
        [HEAD_FILE],
    )
    return directory
