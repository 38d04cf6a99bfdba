"""Routers with their own checkpoint (`routers.<name>.classifier`, `dtype` beside it): one
classifier per distinct checkpoint and dtype, loaded once however many routers name it, each
with its own batcher (weights memory-mapped on the ONNX path, as the gateway's own are).

    own = await open_own(settings, default)   # {router name: Classifier}
    ...
    await close_own(own, default)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from classifier import open_classifier
from classifier.base import Classifier
from gateway.settings.load import Settings

__all__ = ["close_own", "open_own"]


async def open_own(settings: Settings, default: Classifier) -> dict[str, Classifier]:
    """Each router's own classifier; `default` where a router names the gateway's checkpoint."""
    base = settings.classifier
    loaded: dict[tuple[str, str], Classifier] = {}
    if base.url is None:
        loaded[(base.model, base.dtype)] = default
    own: dict[str, Classifier] = {}
    try:
        for spec in settings.routers.values():
            if spec.classifier is None:
                continue
            mine = dataclasses.replace(
                base, model=spec.classifier, dtype=spec.dtype or base.dtype, url=None
            )
            key = (mine.model, mine.dtype)
            if key not in loaded:
                loaded[key] = await open_classifier(mine)
            own[spec.name] = loaded[key]
    except BaseException:
        await close_own(own, default)
        raise
    return own


async def close_own(own: Mapping[str, Classifier], default: Classifier) -> None:
    """Close every classifier `open_own` loaded (each once; never `default`)."""
    seen = {id(default)}
    for classifier in own.values():
        if id(classifier) not in seen:
            seen.add(id(classifier))
            await classifier.aclose()
