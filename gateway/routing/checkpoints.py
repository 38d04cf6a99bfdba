"""Routers with their own checkpoint (`routers.<name>.classifier`, `dtype` beside it) or their
own trained directory (`routers.<name>.router`, `routers.registry`), or RouteLLM's MF router
(`kind: mf`, and `router-mf-<t>` under `MF_ROUTER` once `ROUTELLM_EMBEDDINGS_URL` is set): one
classifier per distinct checkpoint and dtype (or directory), loaded once however many routers
name it, each with its own batcher (weights memory-mapped on the ONNX path, as the gateway's
own are).

    loaded = {}                                        # (checkpoint, dtype) -> Classifier
    own = await open_own(settings, default, loaded)    # {router name: Classifier}
    ...
    await close_own(own, default)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path

from classifier import open_classifier
from classifier.base import Classifier, ClassifierUnavailable
from gateway.settings.load import Settings
from gateway.settings.routing import MF_ROUTER, RouterSpec
from routers.embedding import RouterOptions
from routers.manifest import RouterDirectoryError, read_manifest
from routers.mf import DEFAULT_MF_MODEL, MFOptions, is_mf_checkpoint, open_mf
from routers.registry import open_router

logger = logging.getLogger(__name__)

__all__ = ["close_own", "forget", "mf_options", "open_mf_of", "open_own"]


async def open_own(
    settings: Settings,
    default: Classifier,
    loaded: dict[tuple[str, str], Classifier] | None = None,
) -> dict[str, Classifier]:
    """Each router's own classifier; `default` where a router names the gateway's checkpoint.
    `loaded` (checkpoint and dtype → classifier) is reused and gains what is loaded here, so a
    reload loads only the checkpoints it adds."""
    base = settings.classifier
    loaded = {} if loaded is None else loaded
    if base.url is None:
        loaded[(base.model, base.dtype)] = default
    own: dict[str, Classifier] = {}
    opened: list[Classifier] = []
    mf_sources = {
        spec.name: (spec.classifier or settings.mf_model or DEFAULT_MF_MODEL, spec.mf_pair)
        for spec in settings.routers.values()
        if spec.classifier_kind == "mf"
    }
    # `router-mf-<t>` scores with ROUTELLM_MF_MODEL, by default RouteLLM's own checkpoint
    # once an embeddings API is set; only a checkpoint named explicitly must load.
    if settings.mf_model or settings.embeddings is not None:
        mf_sources[MF_ROUTER] = (settings.mf_model or DEFAULT_MF_MODEL, None)
    try:
        for name, (source, pair) in mf_sources.items():
            mf = mf_options(settings, pair)
            key = (source, f"mf {mf.strong} {mf.weak}")
            if key not in loaded:
                try:
                    loaded[key] = await open_mf(source, mf)
                except ClassifierUnavailable as exc:
                    if name != MF_ROUTER or settings.mf_model:
                        raise
                    logger.warning(
                        "router-mf-<t> is not served: RouteLLM's MF checkpoint %s could not be "
                        "loaded (%s); set ROUTELLM_MF_MODEL to a local copy of it",
                        source,
                        exc,
                    )
                    continue
                opened.append(loaded[key])
            own[name] = loaded[key]
        for spec in settings.routers.values():
            if spec.classifier_kind == "mf":
                continue
            if spec.router is not None:
                key = (spec.router, f"router:{spec.dtype or 'float32'}")
                if key not in loaded:
                    check_models(spec)
                    options = RouterOptions(
                        embeddings=settings.embeddings,
                        dtype="int8" if spec.dtype == "int8" else "float32",
                        cache_root=Path(cache) if (cache := base.onnx_cache_dir) else None,
                    )
                    loaded[key] = await open_router(spec.router, options)
                    opened.append(loaded[key])
                own[spec.name] = loaded[key]
                continue
            if spec.classifier is None:
                continue
            mine = dataclasses.replace(
                base, model=spec.classifier, dtype=spec.dtype or base.dtype, url=None
            )
            key = (mine.model, mine.dtype)
            if key not in loaded:
                loaded[key] = await open_classifier(mine)
                opened.append(loaded[key])
            own[spec.name] = loaded[key]
    except BaseException:
        # Only what this call opened: the classifiers it reused still serve.
        forget(loaded, opened)
        for classifier in opened:
            await classifier.aclose()
        raise
    return own


def mf_options(settings: Settings, pair: tuple[str, str] | None = None) -> MFOptions:
    """How the settings serve an MF router: their embeddings API and breaker, and `pair`
    (None: `ROUTELLM_MF_PAIR`'s, else RouteLLM's)."""
    strong, weak = pair or settings.mf_pair
    return MFOptions(
        embeddings=settings.embeddings,
        strong=strong,
        weak=weak,
        breaker_failures=settings.breaker_failures,
        breaker_cooldown=settings.breaker_cooldown,
    )


async def open_mf_of(settings: Settings) -> Classifier:
    """`router-mf-<t>`'s MF router on its own (`calibrate --mf`)."""
    if settings.embeddings is None:
        raise ClassifierUnavailable(
            "set ROUTELLM_EMBEDDINGS_URL (and ROUTELLM_MF_MODEL for a checkpoint other than "
            f"{DEFAULT_MF_MODEL}): the MF router scores the prompts"
        )
    return await open_mf(settings.mf_model or DEFAULT_MF_MODEL, mf_options(settings))


def check_models(spec: RouterSpec) -> None:
    """Every model a many-model router is configured to choose must be one its directory
    predicts for (`RouterDirectoryError` naming those it does)."""
    assert spec.router is not None
    if is_mf_checkpoint(spec.router):
        raise RouterDirectoryError(
            f"routers.{spec.name}: {spec.router} is RouteLLM's MF checkpoint, which scores a "
            f"strong/weak win rate: serve it with `kind: mf`, `classifier: {spec.router}`, "
            "`strong` and `weak` instead of `router:` and `models:`"
        )
    known = read_manifest(spec.router).models
    missing = [name for name in spec.models or {} if name not in known]
    if missing:
        raise RouterDirectoryError(
            f"routers.{spec.name}: {spec.router} predicts no quality for {', '.join(missing)}: "
            f"it knows {', '.join(known)}; map them with `models: {{<its name>: <your model>}}`"
        )


def forget(loaded: dict[tuple[str, str], Classifier], gone: list[Classifier]) -> None:
    """Drop closed classifiers from `loaded`."""
    for key, classifier in list(loaded.items()):
        if any(classifier is g for g in gone):
            del loaded[key]


async def close_own(own: Mapping[str, Classifier], default: Classifier) -> None:
    """Close every classifier `open_own` loaded (each once; never `default`)."""
    seen = {id(default)}
    for classifier in own.values():
        if id(classifier) not in seen:
            seen.add(id(classifier))
            await classifier.aclose()
