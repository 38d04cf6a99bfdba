"""The embedding router kind: a sentence encoder and a head, behind the micro-batcher.

    router = EmbeddingRouter.load("routers/mmlu", options)        # blocking: off the loop
    (scores,) = await router.classify(["Prove that sqrt(2) is irrational"])
    scores.as_dict()   # {"gpt-4o": 0.83, "llama3": 0.41, ...}: each model's predicted quality

It is a `classifier.base.Classifier` whose labels are the models it predicts for, so it batches,
caches (by the text's digest) and threads as the sequence classifier does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.base import ClassifierUnavailable, Scores
from classifier.batching import MicroBatcher
from routers.encoders import (
    REMOTE_PREFIX,
    EmbeddingsApi,
    Encoder,
    EncoderDtype,
    LocalEncoder,
    RemoteEncoder,
)
from routers.heads import HEAD_FILE, HEADS, Head
from routers.manifest import Manifest, RouterDirectoryError


@dataclass(frozen=True, slots=True)
class RouterOptions:
    """How a router directory is served: the embeddings API for a `remote:` encoder, the local
    encoder's runtime and ONNX cache, and the batcher's settings."""

    embeddings: EmbeddingsApi | None = None
    dtype: EncoderDtype = "float32"
    cache_root: Path | None = None
    batch_size: int = 32
    max_wait_ms: float = 2.0
    cache_size: int = 4096


class EmbeddingRouter:
    """Predicted quality per model for each text: `head.predict(encoder.encode(texts))`."""

    def __init__(
        self,
        encoder: Encoder,
        head: Head,
        manifest: Manifest,
        *,
        name: str,
        options: RouterOptions | None = None,
    ) -> None:
        options = options or RouterOptions()
        self.encoder = encoder
        self.head = head
        self.manifest = manifest
        self.labels = manifest.models
        self._name = name
        self.batcher = MicroBatcher(
            self.predict,
            batch_size=options.batch_size,
            max_wait_ms=options.max_wait_ms,
            cache_size=options.cache_size,
            name="embedding-router-batcher",
        )

    @classmethod
    def load(
        cls, directory: str, manifest: Manifest, options: RouterOptions | None = None
    ) -> EmbeddingRouter:
        """Load the encoder and head a directory names, and warm them up. Blocking."""
        options = options or RouterOptions()
        head_kind = HEADS.get(manifest.head or "")
        if head_kind is None:
            raise RouterDirectoryError(
                f"{directory}: head {manifest.head!r} is not one of {', '.join(sorted(HEADS))}"
            )
        try:
            with np.load(Path(directory) / HEAD_FILE) as arrays:
                head = head_kind.from_arrays(arrays)
        except (OSError, KeyError, ValueError) as exc:
            raise RouterDirectoryError(f"{directory}/{HEAD_FILE} cannot be read: {exc}") from None
        router = cls(
            open_encoder(manifest.encoder, options),
            head,
            manifest,
            name=directory,
            options=options,
        )
        if not isinstance(router.encoder, RemoteEncoder):
            router.predict(["warm-up"])
        return router

    @property
    def name(self) -> str:
        return self._name

    def predict(self, texts: list[str]) -> list[Scores]:
        """The blocking core, on the batcher's worker thread."""
        quality = self.head.predict(self.encoder.encode(texts))
        return [Scores(self.labels, tuple(float(q) for q in row)) for row in quality]

    async def classify(self, texts: Sequence[str]) -> list[Scores]:
        return await self.batcher.submit(texts)

    async def health(self) -> dict[str, object]:
        return {
            "ready": not self.batcher.closed,
            "kind": self.manifest.kind,
            "version": self.manifest.version,
            "encoder": self.encoder.name,
            "head": self.manifest.head,
            "models": list(self.labels),
            "forward_passes": self.batcher.stats.forward_passes,
        }

    async def aclose(self) -> None:
        await self.batcher.aclose()
        self.encoder.close()


def open_encoder(name: str | None, options: RouterOptions) -> Encoder:
    """The encoder a manifest names: `remote:<model>` on the embeddings API, else in-process."""
    embeddings = options.embeddings
    if name is None:
        raise ClassifierUnavailable("the router directory names no encoder")
    if name.startswith(REMOTE_PREFIX):
        if embeddings is None:
            raise ClassifierUnavailable(
                f"the router embeds with an embeddings API ({name}): set "
                "ROUTELLM_EMBEDDINGS_URL to its base URL"
            )
        model = name.removeprefix(REMOTE_PREFIX)
        api = dataclasses.replace(embeddings, model=model)
        return RemoteEncoder(api)
    return LocalEncoder.load(name, dtype=options.dtype, cache_root=options.cache_root)


def load(directory: str, manifest: Manifest, options: RouterOptions) -> EmbeddingRouter:
    """The registry's entry point for this kind."""
    return EmbeddingRouter.load(directory, manifest, options)
