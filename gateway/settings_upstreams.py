"""The `upstreams:` and `models:` sections of the config file: where each model is served, under
which id, and at what price.

`gateway.settings.load_settings` calls these; the values they build are defined there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from classifier.settings import SettingsError
from gateway.settings import (
    DEFAULT_BASE_URL,
    UPSTREAM_KINDS,
    ModelTarget,
    Upstream,
    config_section,
    http_url,
)
from gateway.settings_accounts import read_price

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _substitute(value: str, env: Mapping[str, str], name: str) -> str:
    def one(match: re.Match[str]) -> str:
        var = match.group(1)
        if var not in env:
            raise SettingsError(
                f"{name} uses ${{{var}}}, which is not set: export {var} or remove it"
            )
        return env[var]

    return ENV_REF.sub(one, value)


def read_upstreams(
    doc: Mapping[str, Any], env: Mapping[str, str], where: str
) -> dict[str, Upstream]:
    """The file's `upstreams:`; `${VAR}` in a base_url or api_key is taken from `env`."""
    found: dict[str, Upstream] = {}
    for name, spec in config_section(doc, "upstreams", where).items():
        key = f"upstreams.{name} {where}"
        if not isinstance(spec, dict) or "base_url" not in spec:
            raise SettingsError(f"{key} needs a base_url, e.g. base_url: {DEFAULT_BASE_URL}")
        base_url = http_url(_substitute(str(spec["base_url"]), env, key), f"{key}: base_url")
        api_key = spec.get("api_key")
        if api_key is not None:
            api_key = _substitute(str(api_key), env, f"{key}: api_key") or None
        kind = spec.get("kind", "openai")
        if kind not in UPSTREAM_KINDS:
            raise SettingsError(f"{key}: kind {kind!r} is not supported: use openai or anthropic")
        found[str(name)] = Upstream(str(name), base_url, api_key, kind)
    return found


def read_models(
    doc: Mapping[str, Any], upstreams: Mapping[str, Upstream], where: str
) -> dict[str, ModelTarget]:
    """The file's `models:`, each served by one of `upstreams`, with its price when given."""
    found: dict[str, ModelTarget] = {}
    for name, spec in config_section(doc, "models", where).items():
        key = f"models.{name} {where}"
        if not isinstance(spec, dict) or not isinstance(spec.get("upstream"), str):
            raise SettingsError(f"{key} needs `upstream: <name>` naming one of `upstreams:`")
        if spec["upstream"] not in upstreams:
            known = ", ".join(sorted(upstreams)) or "none defined"
            raise SettingsError(f"{key}: unknown upstream {spec['upstream']!r} (known: {known})")
        upstream_model = spec.get("model", name)
        if not isinstance(upstream_model, str) or not upstream_model:
            raise SettingsError(f"{key}: `model` must be the id the upstream expects")
        price = read_price(spec["price"], f"{key}: price") if "price" in spec else None
        found[str(name)] = ModelTarget(str(name), spec["upstream"], upstream_model, price)
    return found
