"""A router directory's predicted quality for labelled prompts, for `evaluate` and `calibrate`.

    predicted = predict_directory("routers/mmlu", texts, ("gemini-1.5-pro-002", "Yi-6b-Chat"))

An embedding router with an in-process encoder is replayed offline: its head on the cached
embeddings (`gateway.learning.embeddings`), so judging it after `train` encodes nothing. Any
other kind is opened as the gateway opens it (`routers.registry.open_router`) and asked in
batches. Either way the columns come back in the order asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classifier.settings import SettingsError
from gateway.learning.embeddings import embed
from routers.encoders import REMOTE_PREFIX, EmbeddingsApi
from routers.heads import HEAD_FILE, HEADS
from routers.manifest import RouterDirectoryError, read_manifest

__all__ = ["predict_directory"]

BATCH = 64


def predict_directory(
    directory: str | Path,
    texts: Sequence[str],
    models: Sequence[str],
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
    api: EmbeddingsApi | None = None,
) -> np.ndarray:
    """(texts × models) predicted quality; `SettingsError` when the router does not predict
    for one of `models`. `api`: the embeddings API of a `remote:<model>` encoder."""
    manifest = read_manifest(directory)
    missing = [m for m in models if m not in manifest.models]
    if missing:
        raise SettingsError(
            f"{directory} predicts for {', '.join(manifest.models)}, not for "
            f"{', '.join(missing)}: name its models in --models (column=name maps a column)"
        )
    columns = [manifest.models.index(m) for m in models]
    encoder = manifest.encoder or ""
    if manifest.kind == "embedding" and (api is not None or not encoder.startswith(REMOTE_PREFIX)):
        head_kind = HEADS.get(manifest.head or "")
        if head_kind is None:
            raise RouterDirectoryError(f"{directory}: head {manifest.head!r} is not known here")
        with np.load(Path(directory) / HEAD_FILE) as arrays:
            head = head_kind.from_arrays(arrays)
        vectors = embed(texts, encoder, cache_dir=cache_dir, progress=progress, api=api)
        return np.asarray(head.predict(vectors))[:, columns]
    return asyncio.run(_classified(str(directory), texts))[:, columns]


async def _classified(directory: str, texts: Sequence[str]) -> np.ndarray:
    from routers.registry import open_router

    router = await open_router(directory)
    try:
        rows = []
        for start in range(0, len(texts), BATCH):
            for scores in await router.classify(list(texts[start : start + BATCH])):
                rows.append(list(scores.probs))
    finally:
        await router.aclose()
    return np.asarray(rows, dtype=np.float32)
