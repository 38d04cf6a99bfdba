"""`calibrate --from-ledger --router-name NAME`: a many-model router's cost weight from the
traffic it served. The ledger keeps each decision's predicted quality per model (`scores`);
replaying the serving rule over them at every weight finds the one meeting the target. With no
labels on live traffic, the predictions are also what the choices are taken to be worth.

    found = weight_from_ledger(settings, "smart", since, cost_share=0.3)
"""

from __future__ import annotations

import asyncio

import numpy as np

from classifier.settings import SettingsError
from gateway.learning.weights import Calibration, calibrate_weight
from gateway.ledger.many import recorded_scores
from gateway.ledger.writer import Ledger
from gateway.settings.load import Settings

__all__ = ["weight_from_ledger"]


def weight_from_ledger(
    settings: Settings,
    router: str,
    since: float | None,
    *,
    cost_share: float | None = None,
    quality_share: float | None = None,
) -> tuple[Calibration, list[str], int]:
    """The calibration, the router's models (`Calibration.strongest` indexes them) and the
    number of decisions it was read from; `SettingsError` with the fix when there is nothing to
    read."""
    spec = settings.routers.get(router)
    if spec is None or spec.models is None:
        many = [s.name for s in settings.routers.values() if s.models]
        raise SettingsError(
            f"{router!r} is not a many-model router of this config: use one of "
            f"{', '.join(many) or '(none: define one with routers.<name>.router)'}"
        )
    if not settings.ledger.enabled:
        raise SettingsError("ROUTELLM_LEDGER=off: there is no ledger to calibrate from")
    models = list(spec.models.values())
    rows = asyncio.run(_read(settings, router, since))
    matrix = np.asarray(
        [[row[m] for m in models] for row in rows if all(m in row for m in models)],
        dtype=np.float64,
    )
    if not len(matrix):
        raise SettingsError(f"the ledger has no decisions of {router!r} over all its models")
    prices = np.asarray([_blended(settings, m) for m in models])
    found = calibrate_weight(matrix, prices, cost_share=cost_share, quality_share=quality_share)
    return found, models, len(matrix)


def _blended(settings: Settings, model: str) -> float:
    price = settings.models[model].price
    if price is None:  # `load_settings` refuses a many-model router with an unpriced model
        raise SettingsError(f"{model!r} has no price: add `price:` under models.{model}")
    return price.blended


async def _read(settings: Settings, router: str, since: float | None) -> list[dict[str, float]]:
    ledger = Ledger.open(settings)
    try:
        return await asyncio.to_thread(recorded_scores, ledger, router, since)
    finally:
        await ledger.aclose()
