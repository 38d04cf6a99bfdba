"""The accounting part of the settings: model prices (`ROUTELLM_PRICES`), the savings baseline,
the decision ledger (`ROUTELLM_LEDGER*`) and shadow judging (`quality:`).

`gateway.settings.load.load_settings` calls these.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from classifier.settings import SettingsError
from gateway.settings.base import config_section, optional_model
from gateway.settings.prices import read_price
from gateway.settings.routing import RouterSpec
from gateway.settings.upstreams import ModelTarget, Upstream


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """Where the decision ledger lives and what it keeps (`ROUTELLM_LEDGER*`)."""

    location: str | None = None
    """`ROUTELLM_LEDGER`: a SQLite file path, a `postgresql://` URL (one ledger for every
    replica), or `off`. Unset: `ledger.sqlite3` in the user's state directory."""
    enabled: bool = True
    """False with `ROUTELLM_LEDGER=off`: nothing is recorded and the admin data routes say so."""
    retention_days: float = 30.0
    """`ROUTELLM_LEDGER_RETENTION_DAYS`: rows older than this many days are deleted."""
    store_prompts: bool = False
    """`ROUTELLM_LEDGER_PROMPTS`: `1` also keeps the classified text (what `train` needs).
    Default: never stored."""


@dataclass(frozen=True, slots=True)
class QualitySettings:
    """Shadow judging (`quality:` in the config file): for a share of routed requests, the
    model the router did not pick answers too, and a judge model compares the two answers."""

    shadow_share: float = 0.0
    """Share of routed Chat Completions requests judged; 0 (the default) turns shadowing off."""
    judge: str | None = None
    """The model (a name under `models:`) that compares the two answers."""
    daily_budget_usd: float = 0.0
    """Estimated USD of shadow and judge calls per UTC day; shadowing stops at it."""
    concurrency: int = 4
    """Shadow jobs running at once; a request sampled while all are busy waits in the queue."""
    timeout: float = 120.0
    """Seconds one shadow job (the shadow answer and the judge's verdict) may take."""
    queue: int = 256
    """Sampled requests waiting for a free job; one sampled while the queue is full is not
    judged (so the achieved share stays the configured one under bursts it can absorb)."""

    @property
    def enabled(self) -> bool:
        return self.shadow_share > 0


QUALITY_EXAMPLE = "quality: {shadow_share: 0.05, judge: gpt-4o, daily_budget_usd: 1.0}"


def apply_prices(env: Mapping[str, str], models: dict[str, ModelTarget]) -> None:
    """`ROUTELLM_PRICES` overrides the file's prices, model by model."""
    raw = env.get("ROUTELLM_PRICES", "").strip()
    if not raw:
        return
    example = '\'{"gpt-4o": {"input": 2.5, "output": 10}}\''
    try:
        doc: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"ROUTELLM_PRICES is not valid JSON ({exc.msg} at char {exc.pos}): write {example}"
        ) from None
    if not isinstance(doc, dict):
        raise SettingsError(f"ROUTELLM_PRICES must be an object of model → price, e.g. {example}")
    for name, spec in doc.items():
        if name not in models:
            known = ", ".join(sorted(models))
            raise SettingsError(
                f"ROUTELLM_PRICES prices {name!r}, which the gateway does not serve "
                f"(known: {known})"
            )
        models[name] = replace(models[name], price=read_price(spec, f"ROUTELLM_PRICES: {name}"))


def read_baseline(
    env: Mapping[str, str],
    *,
    routing: Mapping[str, Any],
    where: str,
    models: Mapping[str, ModelTarget],
    strong: str | None,
    mapping: Mapping[str, str] | None,
) -> str | None:
    """The model savings are measured against: the one named, else the strong or LABEL_0 model."""
    explicit = env.get("ROUTELLM_BASELINE_MODEL") or optional_model(routing, "baseline", where)
    if explicit and explicit not in models:
        source = "ROUTELLM_BASELINE_MODEL" if env.get("ROUTELLM_BASELINE_MODEL") else "baseline"
        raise SettingsError(
            f"{source} names {explicit!r}, which the gateway does not serve: name one of "
            f"{', '.join(sorted(models))}"
        )
    return explicit or strong or (mapping or {}).get("LABEL_0")


def _days(raw: str) -> float:
    if not raw.strip():
        return 30.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise SettingsError(
            f"ROUTELLM_LEDGER_RETENTION_DAYS={raw!r} must be a positive number of days, e.g. 30"
        )
    return value


def read_ledger(env: Mapping[str, str]) -> LedgerSettings:
    """Where the decision ledger lives (`ROUTELLM_LEDGER`, `off` turns it off) and what it keeps."""
    location = env.get("ROUTELLM_LEDGER", "").strip() or None
    enabled = location is None or location.lower() != "off"
    if location and enabled and "://" in location:
        scheme = location.split("://", 1)[0].lower()
        if scheme not in ("postgresql", "postgres", "postgresql+psycopg", "sqlite"):
            raise SettingsError(
                f"ROUTELLM_LEDGER uses {scheme}://, which is not supported: give a SQLite file "
                "path, a postgresql:// URL, or off"
            )
    prompts = env.get("ROUTELLM_LEDGER_PROMPTS", "0").strip().lower()
    if prompts not in ("", "0", "1", "false", "true", "no", "yes"):
        raise SettingsError(f"ROUTELLM_LEDGER_PROMPTS={prompts!r} must be 1 or 0")
    return LedgerSettings(
        location=location if enabled else None,
        enabled=enabled,
        retention_days=_days(env.get("ROUTELLM_LEDGER_RETENTION_DAYS", "")),
        store_prompts=prompts in ("1", "true", "yes"),
    )


def read_quality(
    doc: Mapping[str, Any],
    where: str,
    models: Mapping[str, ModelTarget],
    upstreams: Mapping[str, Upstream],
    routers: tuple[RouterSpec, ...],
    *,
    ledger_enabled: bool,
) -> QualitySettings:
    """The `quality:` section. With shadowing on, every model it may call (the judge, and the
    strong and weak model of every win-rate router) needs a price: the daily budget is counted
    in USD, and an unpriced call could not be counted."""
    section = config_section(doc, "quality", where)
    if not section:
        return QualitySettings()
    key = f"quality {where}".strip()
    allowed = {"shadow_share", "judge", "daily_budget_usd", "concurrency", "timeout", "queue"}
    unknown = set(section) - allowed
    if unknown:
        raise SettingsError(
            f"{key}: unknown key {sorted(unknown)[0]!r}: use {', '.join(sorted(allowed))}"
        )

    def number(name: str, default: float, low: float, high: float) -> float:
        raw = section.get(name, default)
        ok = isinstance(raw, int | float) and not isinstance(raw, bool)
        if not ok or not low <= raw <= high:
            raise SettingsError(
                f"{key}: {name}={raw!r} must be a number from {low:g} to {high:g}: "
                f"{QUALITY_EXAMPLE}"
            )
        return float(raw)

    share = number("shadow_share", 0.0, 0.0, 1.0)
    budget = number("daily_budget_usd", 0.0, 0.0, 1e9)
    concurrency = number("concurrency", 4, 1, 1024)
    if concurrency != int(concurrency):
        raise SettingsError(f"{key}: concurrency must be a whole number of jobs, e.g. 4")
    timeout = number("timeout", 120.0, 0.001, 86400.0)
    queue = number("queue", 256, 0, 100_000)
    if queue != int(queue):
        raise SettingsError(f"{key}: queue must be a whole number of requests, e.g. 256")
    judge = section.get("judge")
    if judge is not None and (not isinstance(judge, str) or judge not in models):
        known = ", ".join(sorted(models))
        raise SettingsError(
            f"{key}: judge {judge!r} is not a model the gateway serves: name one of "
            f"`models:` ({known})"
        )
    quality = QualitySettings(share, judge, budget, int(concurrency), timeout, int(queue))
    if not quality.enabled:
        return quality
    if judge is None:
        raise SettingsError(f"{key}: shadow_share > 0 needs a `judge` model: {QUALITY_EXAMPLE}")
    if budget <= 0:
        raise SettingsError(
            f"{key}: shadow_share > 0 needs a daily_budget_usd above 0: {QUALITY_EXAMPLE}"
        )
    if upstreams[models[judge].upstream].kind != "openai":
        raise SettingsError(
            f"{key}: judge {judge!r} is served by an anthropic upstream; the judge is asked on "
            "Chat Completions: name a model of an openai upstream"
        )
    if not ledger_enabled:
        raise SettingsError(
            f"{key}: shadow verdicts are kept in the decision ledger, which is off "
            "(ROUTELLM_LEDGER=off): turn the ledger on, or set shadow_share: 0"
        )
    needed = [judge] + [m for r in routers for m in (r.strong, r.weak) if m]
    for name in dict.fromkeys(needed):
        if models[name].price is None:
            raise SettingsError(
                f"{key}: shadow judging counts its spend in USD, but {name!r} has no price: "
                f"add `price: {{input: ..., output: ...}}` to models.{name} (or "
                "ROUTELLM_PRICES)"
            )
    return quality
