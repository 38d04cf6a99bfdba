"""A router's candidate (`candidate: {router: NAME, mode: shadow|canary, share: S}` under
`routing:` or a named router): another router tried on live traffic beside it.

- `shadow`: the candidate decides too, for a share S of requests (default every one), and its
  choice is recorded beside the decision; the client's answer never changes.
- `canary`: the candidate decides a share S of conversations, chosen by conversation id, so a
  conversation never changes arm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from classifier.settings import SettingsError
from gateway.settings.base import fraction

__all__ = ["Candidate", "CandidateMode", "check_candidates", "read_candidate"]

CandidateMode = Literal["shadow", "canary"]
EXAMPLE = "candidate: {router: my-router, mode: shadow}"


@dataclass(frozen=True, slots=True)
class Candidate:
    router: str
    mode: CandidateMode
    share: float


def read_candidate(section: Mapping[str, Any], key: str) -> Candidate | None:
    raw = section.get("candidate")
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("router"), str):
        raise SettingsError(f"{key}.candidate must name a router: {EXAMPLE}")
    unknown = set(raw) - {"router", "mode", "share"}
    if unknown:
        raise SettingsError(f"{key}.candidate: unknown key {sorted(unknown)[0]!r}: {EXAMPLE}")
    mode = raw.get("mode", "shadow")
    if mode not in ("shadow", "canary"):
        raise SettingsError(f"{key}.candidate: mode {mode!r}: use shadow or canary")
    default = 1.0 if mode == "shadow" else 0.05
    share = fraction({}, f"{key}.candidate.share", raw.get("share"), default)
    return Candidate(raw["router"], mode, share)


def check_candidates(candidates: Mapping[str, Candidate | None], routers: set[str]) -> None:
    """Every candidate is another router the gateway serves."""
    for name, candidate in candidates.items():
        if candidate is None:
            continue
        if candidate.router == name or candidate.router not in routers:
            raise SettingsError(
                f"the candidate of {name!r} is {candidate.router!r}: name another router "
                f"under `routers:` ({', '.join(sorted(routers - {name})) or 'none'})"
            )
