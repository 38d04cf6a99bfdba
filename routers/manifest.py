"""A router directory's manifest, `router.json`: which kind of router it is, the models it
predicts for, and what it was built from.

    {"kind": "embedding", "models": ["gpt-4o", "llama3"], "encoder": "...", "head": "knn",
     "version": "3f2a...", "created": 1764920000.0, "card": {...}}

`version` is a digest of the directory's weights and manifest, so two directories with the same
version route the same way, and a new version is a new directory (routers are versioned by
directory, never edited in place).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from classifier.base import ClassifierUnavailable

MANIFEST = "router.json"
"""The manifest's file name inside a router directory."""


class RouterDirectoryError(ClassifierUnavailable):
    """A router directory is missing, unreadable or names a kind this gateway does not have."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a router directory holds."""

    kind: str
    """The router kind (`routers.registry.KINDS`), e.g. `embedding`."""
    models: tuple[str, ...]
    """The models it predicts a quality for, as the training data named them."""
    encoder: str | None = None
    """The sentence encoder: a directory, a hub id, or `remote:<model>` for an embeddings API."""
    head: str | None = None
    """The head's kind (`routers.heads.HEADS`), e.g. `knn` or `linear`."""
    version: str = ""
    created: float = field(default_factory=time.time)
    card: Mapping[str, Any] = field(default_factory=dict)
    """Free-form facts for people: data, held-out figures, options."""


def read_manifest(directory: str | Path) -> Manifest:
    """The manifest of `directory`; `RouterDirectoryError` with the fix when there is none."""
    path = Path(directory) / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RouterDirectoryError(
            f"{directory} is not a router directory (no {MANIFEST}): point `router:` at a "
            "directory that `routellm-gateway train --models ...` wrote"
        ) from None
    except (OSError, ValueError) as exc:
        raise RouterDirectoryError(f"{path} cannot be read: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
        raise RouterDirectoryError(f"{path} has no `kind`: it was not written by `train`")
    models = raw.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise RouterDirectoryError(f"{path}: `models` must be a non-empty list of names")
    return Manifest(
        kind=raw["kind"],
        models=tuple(models),
        encoder=raw.get("encoder"),
        head=raw.get("head"),
        version=str(raw.get("version", "")),
        created=float(raw.get("created", 0.0)),
        card=raw.get("card") or {},
    )


def write_manifest(directory: str | Path, manifest: Manifest, files: Sequence[str]) -> Manifest:
    """Write `router.json` with a `version` digested from `files` (in `directory`) and the
    manifest itself; returns the manifest as written."""
    root = Path(directory)
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode())
        digest.update((root / name).read_bytes())
    body = asdict(manifest)
    body.pop("version")
    body.pop("created")
    body.pop("card")
    digest.update(json.dumps(body, sort_keys=True).encode())
    out = Manifest(
        manifest.kind,
        tuple(manifest.models),
        manifest.encoder,
        manifest.head,
        digest.hexdigest()[:16],
        manifest.created,
        manifest.card,
    )
    doc = asdict(out)
    doc["models"] = list(out.models)
    (root / MANIFEST).write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    return out
