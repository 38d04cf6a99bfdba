"""RouteLLM's MF router in the settings: a router's `kind:` (bert or mf), and the MF router's
scoring pair, the two of its 64 Arena models (`routers.mf.MODEL_NAMES`) whose win rate it
predicts: `ROUTELLM_MF_PAIR` for `router-mf-<t>`, `mf_pair:` for a router of `kind: mf`;
RouteLLM's own pair when neither is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from classifier.settings import SettingsError
from routers.mf import DEFAULT_STRONG, DEFAULT_WEAK, MODEL_IDS

DEFAULT_PAIR = (DEFAULT_STRONG, DEFAULT_WEAK)
"""gpt-4-1106-preview against mixtral-8x7b-instruct-v0.1, as RouteLLM scores."""


def read_mf_pair(raw: Any, name: str) -> tuple[str, str] | None:
    """`strong,weak` (a string) or `[strong, weak]` (a list), each one of the 64 models; None
    when unset. `name` is the variable or key, for the error."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    parts = [p.strip() for p in raw.split(",")] if isinstance(raw, str) else raw
    example = ",".join(DEFAULT_PAIR)
    if (
        not isinstance(parts, list)
        or len(parts) != 2
        or not all(isinstance(p, str) for p in parts)
        or parts[0] == parts[1]
    ):
        raise SettingsError(
            f"{name} must name two different models of RouteLLM's MF router, strong first, "
            f"e.g. {example}"
        )
    for part in parts:
        if part not in MODEL_IDS:
            raise SettingsError(
                f"{name}: {part!r} is not one of the 64 models RouteLLM's MF router scores: pick "
                "the pair nearest your models from `mf_routers` in /health, e.g. "
                f"{example}"
            )
    return parts[0], parts[1]


def read_kind(
    section: Mapping[str, Any], key: str, own_directory: bool
) -> tuple[Literal["bert", "mf"], tuple[str, str] | None]:
    """A router's `kind:` (default bert) and, for mf, its `mf_pair:`. `own_directory`: the
    router names a `router:` directory or a `dtype:`, which an MF router has no use for."""
    kind = section.get("kind", "bert")
    pair = read_mf_pair(section.get("mf_pair"), f"{key}: mf_pair")
    misplaced = own_directory if kind == "mf" else pair is not None
    if kind not in ("bert", "mf") or misplaced:
        raise SettingsError(
            f"{key}: kind {kind!r}: use `kind: bert` (the default) or `kind: mf` (RouteLLM's MF "
            "router, with `classifier:` its checkpoint and `mf_pair:` what it scores; no "
            "`router:` nor `dtype:`)"
        )
    return kind, pair
