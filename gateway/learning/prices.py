"""Model prices for judging and calibrating many-model routers offline: a prices CSV and/or the
gateway config's `models.<name>.price`, as blended USD per million tokens.

    prices = read_prices_csv(Path("mmlu_pro_29_prices.csv"))   # {"gemini-1.5-pro-002": Price}
    costs = blended_prices(("gemini-1.5-pro-002", "Yi-6b-Chat"), prices)   # [2.1875, 0.2]

The CSV has a `model` column and the input and output prices in USD per million tokens, as
`input_usd_per_mtok`/`output_usd_per_mtok` (`shared/data/multi-model/mmlu_pro_29_prices.csv`) or
`input`/`output`; a row with empty prices is an unpriced model. A price is blended as the
serving rule blends it (`Price.blended`: three input tokens to one output).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from classifier.settings import SettingsError
from gateway.settings.load import Settings
from gateway.settings.prices import Price

__all__ = ["blended_prices", "configured_prices", "read_prices_csv"]

COLUMNS = (("input_usd_per_mtok", "output_usd_per_mtok"), ("input", "output"))


def read_prices_csv(path: Path) -> dict[str, Price]:
    """The priced rows of a prices CSV, by model; `SettingsError` naming a bad row."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise SettingsError(f"cannot read {path} ({exc.strerror})") from None
    header = set(rows[0]) if rows else set()
    names = next((pair for pair in COLUMNS if set(pair) <= header), None)
    if "model" not in header or names is None:
        raise SettingsError(
            f"{path}: a prices CSV needs the columns model, input_usd_per_mtok and "
            "output_usd_per_mtok (USD per million tokens)"
        )
    prices = {}
    for number, row in enumerate(rows, 2):
        raw = [(row.get(column) or "").strip() for column in names]
        if not any(raw):
            continue  # an unpriced model
        try:
            values = [float(v) for v in raw]
        except ValueError:
            raise SettingsError(f"{path}:{number}: prices must be numbers of USD") from None
        if any(v < 0 for v in values):
            raise SettingsError(f"{path}:{number}: prices must be ≥ 0")
        prices[row["model"].strip()] = Price(values[0], values[1])
    return prices


def configured_prices(settings: Settings) -> dict[str, Price]:
    """The prices of the gateway's configured models (`models.<name>.price`, `ROUTELLM_PRICES`)."""
    return {name: m.price for name, m in settings.models.items() if m.price is not None}


def blended_prices(models: Sequence[str], prices: Mapping[str, Price]) -> np.ndarray:
    """Each model's blended price (USD per million tokens); `SettingsError` naming the
    unpriced ones and the fix."""
    missing = [m for m in models if m not in prices]
    if missing:
        raise SettingsError(
            f"no price for {', '.join(missing)}: give --prices FILE (model, input_usd_per_mtok, "
            "output_usd_per_mtok) or price them in the config (models.<name>.price)"
        )
    return np.array([prices[m].blended for m in models])
