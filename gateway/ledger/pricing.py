"""What a request cost: per-model prices, the upstream's token usage, and their product.

    price = settings.models["gpt-4o"].price      # Price(input=2.5, output=10.0, cached_input=None)
    usage = Usage.from_openai(answer["usage"])  # None when the upstream reported none
    cost(price, usage)                          # USD, or None when either is unknown

An unknown price or an unknown usage gives an unknown cost (None), never 0: a report that
silently counts an unpriced model as free would overstate the savings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from gateway.settings.prices import Price

__all__ = ["Usage", "cost", "lost_cache"]

PER_TOKEN = 1e-6
"""Prices are quoted in USD per million tokens."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one request used, as the upstream reported them."""

    input_tokens: int
    """All prompt tokens, cached ones included (OpenAI's `prompt_tokens`)."""
    output_tokens: int
    cached_input_tokens: int = 0
    """The part of `input_tokens` read from the prompt cache."""

    @classmethod
    def from_openai(cls, usage: Any) -> Usage | None:
        """Read an OpenAI `usage` object (Chat Completions or Responses naming); None when it is
        missing or malformed, so that a server that reports nothing counts as unknown, not 0."""
        if not isinstance(usage, Mapping):
            return None
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens"))
        if not _count(prompt) or not _count(completion):
            return None
        details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
        cached = details.get("cached_tokens", 0) if isinstance(details, Mapping) else 0
        cached = min(cached, prompt) if _count(cached) else 0
        return cls(prompt, completion, cached)

    @classmethod
    def from_anthropic(cls, usage: Any, output_tokens: Any = None) -> Usage | None:
        """Read an Anthropic `usage` object, whose `input_tokens` leave out the prompt-cache
        reads and writes: they are added back so that `input_tokens` means the same here as
        OpenAI's. `output_tokens` overrides the object's (a stream's last count)."""
        if not isinstance(usage, Mapping):
            return None
        fresh = usage.get("input_tokens")
        output = usage.get("output_tokens") if output_tokens is None else output_tokens
        if not _count(fresh) or not _count(output):
            return None
        cache = [usage.get(k) for k in ("cache_read_input_tokens", "cache_creation_input_tokens")]
        read, written = (n if _count(n) else 0 for n in cache)
        return cls(fresh + read + written, output, read)


def _count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def cost(price: Price | None, usage: Usage | None) -> float | None:
    """USD for `usage` at `price`; None when either is unknown. Cached input tokens are part of
    `input_tokens` and are charged at `cached_input` when the price gives one."""
    if price is None or usage is None:
        return None
    cached_rate = price.input if price.cached_input is None else price.cached_input
    fresh = usage.input_tokens - usage.cached_input_tokens
    total = (
        fresh * price.input
        + usage.cached_input_tokens * cached_rate
        + usage.output_tokens * price.output
    )
    return total * PER_TOKEN


def lost_cache(price: Price | None, prefix_tokens: int) -> float:
    """USD a model switch cost in prompt cache: the conversation's earlier prompt (`prefix_tokens`,
    what the previous turn sent), paid at the new model's full input price instead of its cached
    price. 0 when the price gives no cached rate (then caching saved nothing to lose)."""
    if price is None or price.cached_input is None:
        return 0.0
    return prefix_tokens * max(price.input - price.cached_input, 0.0) * PER_TOKEN
