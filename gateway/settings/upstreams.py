"""The `upstreams:` and `models:` sections of the config file: where each model is served, under
which id, and at what price.

`gateway.settings.load.load_settings` calls these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from classifier.settings import SettingsError
from gateway.settings.base import DEFAULT_BASE_URL, config_section, http_url
from gateway.settings.prices import Price, read_price

DEFAULT_UPSTREAM = "default"
"""The upstream of `ROUTELLM_UPSTREAM_BASE_URL`, which serves every model not listed."""
UpstreamKind = Literal["openai", "anthropic"]
UPSTREAM_KINDS: tuple[UpstreamKind, ...] = ("openai", "anthropic")


@dataclass(frozen=True, slots=True)
class Upstream:
    """A server the gateway forwards to: OpenAI-compatible, or Anthropic's Messages API."""

    name: str
    base_url: str
    """Base URL up to and including `/v1`; the API's path (`/chat/completions`...) is appended."""
    api_key: str | None = field(default=None, repr=False)
    """Sent as `Authorization: Bearer` (openai) or `x-api-key` (anthropic); never logged."""
    kind: UpstreamKind = "openai"
    """Which APIs it serves: `openai` (chat, responses, completions, embeddings) or
    `anthropic` (messages)."""


@dataclass(frozen=True, slots=True)
class ModelTarget:
    """A model name clients (and the routing) use, and where it is served."""

    name: str
    upstream: str
    upstream_model: str
    """The id sent upstream in the `model` field (default: the name itself)."""
    price: Price | None = None
    """USD per million tokens (`price:` in the file, `ROUTELLM_PRICES`); None: cost unknown."""


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
