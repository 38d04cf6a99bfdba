"""Router kinds by the name a router directory's `router.json` gives (`kind`), and the one
function that opens a directory as a `Classifier`.

    router = await open_router("routers/mmlu", RouterOptions(embeddings=api))

A new kind is one module with `load(directory, manifest, options) -> Classifier` and one line
here. RouteLLM's MF checkpoints have no `router.json`: their `config.json` names them.
"""

from __future__ import annotations

import asyncio
import importlib

from classifier.base import Classifier
from routers.embedding import RouterOptions
from routers.manifest import Manifest, RouterDirectoryError, read_manifest
from routers.mf import MODEL_NAMES, is_mf_checkpoint

KINDS = {"embedding": "routers.embedding", "mf": "routers.mf"}
"""Kind → the module whose `load` opens it (imported when a directory names the kind)."""


async def open_router(directory: str, options: RouterOptions | None = None) -> Classifier:
    """Open a router directory off the event loop; `ClassifierUnavailable` (one line, with the
    fix) when it cannot be."""
    if is_mf_checkpoint(directory):
        manifest = Manifest(kind="mf", models=MODEL_NAMES)
    else:
        manifest = read_manifest(directory)
    module = KINDS.get(manifest.kind)
    if module is None:
        raise RouterDirectoryError(
            f"{directory}: router kind {manifest.kind!r} is not served here: "
            f"use one of {', '.join(sorted(KINDS))}"
        )
    load = importlib.import_module(module).load
    opened: Classifier = await asyncio.to_thread(
        load, directory, manifest, options or RouterOptions()
    )
    return opened
