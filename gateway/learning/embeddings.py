"""Sentence embeddings for `train`, `evaluate` and `calibrate`, computed once per text.

    vectors = embed(texts, "sentence-transformers/all-MiniLM-L6-v2")   # (texts × dim) float32

Each text's vector is cached on disk under the sha256 of the encoder's name and the text, so a
second run on the same data (another head, another split, `evaluate` after `train`) encodes
nothing. The cache lives in the user's cache directory (`default_cache_dir()`), one folder per
encoder, as shards of `.npz` (digests and vectors) written after every chunk: an interrupted run
keeps what it finished. Deleting the folder is always safe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from classifier.settings import SettingsError
from routers.encoders import REMOTE_PREFIX, EmbeddingsApi, Encoder, LocalEncoder, RemoteEncoder

__all__ = ["EmbeddingCache", "default_cache_dir", "embed"]

CHUNK = 1024
"""Texts encoded between two writes of the cache."""
REMOTE_BATCH = 128
"""Texts per call to an embeddings API (OpenAI takes up to 2,048)."""


def default_cache_dir() -> Path:
    """`<user cache dir>/routellm-gateway/embeddings` (platformdirs: `~/.cache/...` on Linux)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("routellm-gateway")) / "embeddings"


def digest(encoder: str, text: str) -> str:
    """The cache key of `text` under `encoder`."""
    return hashlib.sha256(f"{encoder}\n{text}".encode()).hexdigest()


class EmbeddingCache:
    """One encoder's cached vectors: digest → vector, read from the shards at open."""

    def __init__(self, root: Path, encoder: str) -> None:
        self.encoder = encoder
        self.folder = root / hashlib.sha256(encoder.encode()).hexdigest()[:16]
        self._rows: dict[str, np.ndarray] = {}
        for shard in sorted(self.folder.glob("*.npz")):
            try:
                with np.load(shard) as arrays:
                    for key, vector in zip(arrays["keys"], arrays["vectors"], strict=True):
                        self._rows[str(key)] = vector
            except (OSError, KeyError, ValueError):
                continue  # a shard cut short by a crash: its texts are encoded again

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: str) -> np.ndarray | None:
        return self._rows.get(key)

    def vectors(self, keys: Sequence[str]) -> np.ndarray:
        """The cached vectors of `keys`, one row each (every key must be cached)."""
        return np.stack([self._rows[key] for key in keys]).astype(np.float32)

    def put(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Add vectors and write them as one shard (atomically: a temporary file, renamed)."""
        if not keys:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256("".join(keys).encode()).hexdigest()[:24]
        temporary = self.folder / f".{name}.tmp.npz"
        np.savez(temporary, keys=np.asarray(keys), vectors=np.asarray(vectors, np.float32))
        temporary.replace(self.folder / f"{name}.npz")
        for key, vector in zip(keys, vectors, strict=True):
            self._rows[key] = vector


def embed(
    texts: Sequence[str],
    encoder: str,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
    api: EmbeddingsApi | None = None,
) -> np.ndarray:
    """Unit vectors for `texts` (one row each), encoding only those not cached yet, in chunks,
    with a progress bar on stderr unless `progress` is False. An encoder named
    `remote:<model>` is that model on the embeddings API `api`."""
    if encoder.startswith(REMOTE_PREFIX) and api is None:
        raise SettingsError(
            f"--encoder {encoder} embeds with an embeddings API: set ROUTELLM_EMBEDDINGS_URL "
            "(or `embeddings:` in --config), or give a sentence-transformers directory or hub id"
        )
    cache = EmbeddingCache(cache_dir or default_cache_dir(), encoder)
    keys = [digest(encoder, t) for t in texts]
    missing: dict[str, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if cache.get(key) is None:
            missing.setdefault(key, text)
    if missing:
        if not progress:
            # transformers' "Loading weights" bar is not ours to show either.
            from huggingface_hub.utils.tqdm import disable_progress_bars

            disable_progress_bars()
        model = _open(encoder, api)
        try:
            bar = _Bar(len(missing), f"embedding with {encoder}") if progress else None
            todo = list(missing.items())
            for start in range(0, len(todo), CHUNK):
                chunk = todo[start : start + CHUNK]
                vectors = _encode(model, [t for _, t in chunk], bar.advance if bar else None)
                cache.put([k for k, _ in chunk], vectors)
            if bar is not None:
                bar.finish()
        finally:
            model.close()
    return cache.vectors(keys)


def _open(encoder: str, api: EmbeddingsApi | None) -> Encoder:
    if api is not None and encoder.startswith(REMOTE_PREFIX):
        model = encoder.removeprefix(REMOTE_PREFIX)
        return RemoteEncoder(dataclasses.replace(api, model=model))
    return LocalEncoder.load(encoder)


def _encode(model: Encoder, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
    if isinstance(model, LocalEncoder):
        return np.asarray(model.encode(texts, progress), dtype=np.float32)
    parts = []
    for start in range(0, len(texts), REMOTE_BATCH):
        parts.append(model.encode(texts[start : start + REMOTE_BATCH]))
        if progress is not None:
            progress(len(parts[-1]))
    return np.concatenate(parts)


class _Bar:
    """A one-line progress bar on stderr: done/total, share, rate, time left."""

    def __init__(self, total: int, what: str, write: Callable[[str], object] | None = None):
        self.total, self.what, self.done = total, what, 0
        self.started = time.monotonic()
        self._write = write or sys.stderr.write

    def advance(self, count: int) -> None:
        self.done += count
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate else 0.0
        self._write(
            f"\r# {self.what}: {self.done}/{self.total} ({self.done / self.total:.0%}), "
            f"{rate:.0f} texts/s, {left:.0f} s left   "
        )

    def finish(self) -> None:
        self._write("\n")
