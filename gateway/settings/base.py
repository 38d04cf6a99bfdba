"""What every settings section's parser shares: reading a section of the config file, a model name,
a fraction, an upstream URL. Imports nothing of the gateway."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from classifier.settings import SettingsError

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def config_section(doc: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    """The mapping under `key` in the config file (empty when absent)."""
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        raise SettingsError(f"`{key}` {where} must be a mapping")
    return value


def optional_model(section: Mapping[str, Any], key: str, where: str) -> str | None:
    """The model name under `key` of a routing section, or None when absent."""
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"routing.{key} {where} must be a model name")
    return value


def fraction(env: Mapping[str, str], var: str, file_value: Any, default: float) -> float:
    """A number from 0 to 1: the variable `var`, else the file's value, else `default`."""
    raw: Any = env.get(var)
    if raw is None or raw == "":
        raw = default if file_value is None else file_value
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise SettingsError(f"{var}={raw!r} must be a number between 0 and 1, e.g. 0.6")
    return value


def http_url(url: Any, name: str) -> str:
    """An upstream's base URL, checked to be http(s), without its trailing slash."""
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        raise SettingsError(f"{name}={url!r} must be an http(s) URL such as {DEFAULT_BASE_URL}")
    return url.rstrip("/")


def positive(env: Mapping[str, str], var: str, default: float, *, integer: bool = False) -> float:
    """A number > 0 from the variable (or key) `var` of `env`, else `default`; `SettingsError`
    naming `var` otherwise."""
    raw = env.get(var)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = -1
    if not value > 0 or math.isinf(value):
        kind = "a positive whole number" if integer else "a positive number of seconds"
        raise SettingsError(f"{var}={raw!r} must be {kind}")
    return value
