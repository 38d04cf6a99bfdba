"""A model's price (`price:` under `models:`, `ROUTELLM_PRICES`): the value and its parser."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from classifier.settings import SettingsError

INPUT_SHARE = 0.75
"""Share of input tokens in a blended price."""


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price in USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None
    """Price of input tokens served from the provider's prompt cache; None: same as `input`."""

    @property
    def blended(self) -> float:
        """USD per million tokens at three input tokens to one output token (the usual blend
        for chat traffic): what a many-model router weighs (`gateway.routing.weighing`)."""
        return INPUT_SHARE * self.input + (1 - INPUT_SHARE) * self.output


def read_price(spec: Any, name: str) -> Price:
    """A model's price in USD per million tokens, from the file or `ROUTELLM_PRICES`."""
    example = "{input: 2.50, output: 10.00, cached_input: 1.25}"
    if not isinstance(spec, dict) or not {"input", "output"} <= set(spec):
        raise SettingsError(f"{name} needs input and output in USD per million tokens: {example}")
    unknown = set(spec) - {"input", "output", "cached_input"}
    if unknown:
        raise SettingsError(f"{name}: unknown key {sorted(unknown)[0]!r}: use {example}")
    values: dict[str, float | None] = {"cached_input": None}
    for key, raw in spec.items():
        ok = isinstance(raw, int | float) and not isinstance(raw, bool)
        if not ok or not 0 <= raw < math.inf:
            raise SettingsError(f"{name}: {key}={raw!r} must be a number of USD ≥ 0: {example}")
        values[key] = float(raw)
    return Price(values["input"] or 0.0, values["output"] or 0.0, values["cached_input"])
