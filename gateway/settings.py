"""Gateway settings: parsed and validated once at start-up into a frozen `Settings`.

This is the only module that reads the environment (the CLI hands it `os.environ`). Sources, in
increasing priority: built-in defaults, the YAML file (`--config` / `ROUTELLM_CONFIG`), then the
`ROUTELLM_*` variables. Anything invalid raises `SettingsError` with one line that names the
variable (or the file key) and says how to fix it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from classifier.settings import ClassifierSettings, SettingsError
from gateway.logs import LogFormat

__all__ = ["ModelTarget", "Settings", "SettingsError", "Upstream", "load_settings"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_STRONG = "gpt-4o"
DEFAULT_WEAK = "gpt-4o-mini"
DEFAULT_UPSTREAM = "default"
LABEL_RE = re.compile(r"^LABEL_\d+$")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Upstream:
    """An OpenAI-compatible server the gateway forwards to."""

    name: str
    base_url: str
    """Base URL up to and including `/v1`; `/chat/completions` is appended."""
    api_key: str | None = field(default=None, repr=False)
    """Sent as `Authorization: Bearer`; never logged, never shown."""


@dataclass(frozen=True, slots=True)
class ModelTarget:
    """A model name clients (and the routing) use, and where it is served."""

    name: str
    upstream: str
    upstream_model: str
    """The id sent upstream in the `model` field (default: the name itself)."""


@dataclass(frozen=True)
class Settings:
    """Everything the gateway needs, validated. Build it with `load_settings`."""

    upstreams: Mapping[str, Upstream]
    models: Mapping[str, ModelTarget]
    """Every model the gateway serves, by client-facing name."""
    mapping: Mapping[str, str] | None = None
    """Seed routing for `router`: top label → model. None: `router` uses the win-rate rule."""
    threshold: float = 0.5
    """With a mapping: top score below it → fallback. Without: strong when P(LABEL_0) ≥ it."""
    fallback: str | None = None
    """Model for routed requests when below threshold, classifier or upstream failure."""
    strong: str | None = None
    """Strong model of the RouteLLM rule (`router-bert-<t>`)."""
    weak: str | None = None
    """Weak model of the RouteLLM rule."""
    classifier: ClassifierSettings = field(default_factory=lambda: ClassifierSettings.from_env({}))
    """In-process model or remote URL, dtype, batching, timeouts."""
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    """Keys clients must send as `Authorization: Bearer`; empty: no client auth."""
    upstream_timeout: float = 60.0
    """Seconds to wait for an upstream's first byte, and between two events of a stream."""
    connect_timeout: float = 10.0
    """Seconds to open a connection to an upstream."""
    max_body_bytes: int = 20 * 1024 * 1024
    """Largest request body accepted (20 MiB admits a few base64 images); larger → 413."""
    max_messages: int = 2048
    """Most messages one request may carry."""
    max_concurrency: int = 512
    """Requests in flight at once; beyond it → 429 with Retry-After."""
    breaker_failures: int = 5
    """Consecutive failures that open an upstream's circuit breaker."""
    breaker_cooldown: float = 30.0
    """Seconds an open breaker skips its upstream before probing it again."""
    log_format: LogFormat = "text"
    """`text` or `json`: one line per request, never keys or message content."""
    shutdown_grace: float = 30.0
    """Seconds in-flight requests and streams may take to finish after SIGTERM."""


def load_settings(env: Mapping[str, str], config_path: str | None = None) -> Settings:
    """Build `Settings` from the environment and an optional YAML file; raise `SettingsError`."""
    path = config_path or env.get("ROUTELLM_CONFIG") or None
    doc = _read_yaml(path) if path else {}
    where = f"in {path}" if path else ""
    routing = _section(doc, "routing", where)

    mapping = _mapping(env, routing, where)
    threshold = _fraction(env, "ROUTELLM_THRESHOLD", routing.get("threshold"), 0.5)
    strong = env.get("ROUTELLM_STRONG_MODEL") or _opt_str(routing, "strong", where)
    weak = env.get("ROUTELLM_WEAK_MODEL") or _opt_str(routing, "weak", where)
    if mapping is None and not strong and not weak:
        strong, weak = DEFAULT_STRONG, DEFAULT_WEAK
    if bool(strong) != bool(weak):
        missing = "ROUTELLM_WEAK_MODEL" if strong else "ROUTELLM_STRONG_MODEL"
        raise SettingsError(
            f"{missing} is not set: the RouteLLM rule needs both a strong and a weak model"
        )
    fallback = env.get("ROUTELLM_FALLBACK_MODEL") or _opt_str(routing, "fallback", where) or weak
    if fallback is None:
        raise SettingsError(
            "ROUTELLM_FALLBACK_MODEL is not set: with ROUTELLM_MAPPING, name the model used below "
            "ROUTELLM_THRESHOLD and when the classifier or an upstream fails"
        )

    upstreams = _upstreams(doc, env, where)
    models = _models(doc, upstreams, where)
    has_default = bool(env.get("ROUTELLM_UPSTREAM_BASE_URL")) or not path
    if has_default:
        upstreams[DEFAULT_UPSTREAM] = Upstream(
            DEFAULT_UPSTREAM,
            _base_url(
                env.get("ROUTELLM_UPSTREAM_BASE_URL") or DEFAULT_BASE_URL,
                "ROUTELLM_UPSTREAM_BASE_URL",
            ),
            env.get("ROUTELLM_UPSTREAM_API_KEY") or env.get("OPENAI_API_KEY") or None,
        )
    extra = [m.strip() for m in env.get("ROUTELLM_MODELS", "").split(",") if m.strip()]
    sources = _routed_sources(mapping, fallback, strong, weak)
    sources.update({name: "ROUTELLM_MODELS" for name in extra if name not in sources})
    for name, source in sources.items():
        if name in models:
            continue
        if not has_default:
            raise SettingsError(
                f"{source} names {name!r}, which no upstream serves: add it under `models:` "
                f"{where} or set ROUTELLM_UPSTREAM_BASE_URL to the upstream that serves it"
            )
        models[name] = ModelTarget(name, DEFAULT_UPSTREAM, name)
    for reserved in ("router",):
        if reserved in models:
            raise SettingsError(
                f"the model name {reserved!r} is reserved for routing: rename it {where}"
            )

    keys = tuple(k.strip() for k in env.get("ROUTELLM_API_KEYS", "").split(",") if k.strip())
    log_format = _log_format(env.get("ROUTELLM_LOG_FORMAT", "text").strip().lower() or "text")
    return Settings(
        upstreams=upstreams,
        models=models,
        mapping=mapping,
        threshold=threshold,
        fallback=fallback,
        strong=strong,
        weak=weak,
        classifier=ClassifierSettings.from_env(env),
        api_keys=keys,
        upstream_timeout=_positive(env, "ROUTELLM_UPSTREAM_TIMEOUT", 60.0),
        connect_timeout=_positive(env, "ROUTELLM_CONNECT_TIMEOUT", 10.0),
        max_body_bytes=int(
            _positive(env, "ROUTELLM_MAX_BODY_BYTES", 20 * 1024 * 1024, integer=True)
        ),
        max_messages=int(_positive(env, "ROUTELLM_MAX_MESSAGES", 2048, integer=True)),
        max_concurrency=int(_positive(env, "ROUTELLM_MAX_CONCURRENCY", 512, integer=True)),
        breaker_failures=int(_positive(env, "ROUTELLM_BREAKER_FAILURES", 5, integer=True)),
        breaker_cooldown=_positive(env, "ROUTELLM_BREAKER_COOLDOWN", 30.0),
        log_format=log_format,
        shutdown_grace=_positive(env, "ROUTELLM_SHUTDOWN_GRACE", 30.0),
    )


def _log_format(value: str) -> LogFormat:
    if value in ("text", "json"):
        return value  # type: ignore[return-value]  # checked just above
    raise SettingsError(f"ROUTELLM_LOG_FORMAT={value!r} is not supported: use text or json")


def _routed_sources(
    mapping: Mapping[str, str] | None, fallback: str | None, strong: str | None, weak: str | None
) -> dict[str, str]:
    """Every model the routing can pick → the variable that names it (for error messages)."""
    named = dict.fromkeys((mapping or {}).values(), "ROUTELLM_MAPPING")
    for var, name in (
        ("ROUTELLM_FALLBACK_MODEL", fallback),
        ("ROUTELLM_STRONG_MODEL", strong),
        ("ROUTELLM_WEAK_MODEL", weak),
    ):
        if name:
            named.setdefault(name, var)
    return named


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(
            f"ROUTELLM_CONFIG: cannot read {path!r} ({exc.strerror}): pass an existing YAML file"
        ) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise SettingsError(
            f"{path}: invalid YAML{at}: fix the syntax (see config/example.yaml)"
        ) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise SettingsError(
            f"{path}: the top level must be a mapping with upstreams/models/routing"
        )
    unknown = set(doc) - {"upstreams", "models", "routing"}
    if unknown:
        raise SettingsError(
            f"{path}: unknown key {sorted(unknown)[0]!r}: use upstreams, models, routing"
        )
    return doc


def _section(doc: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        raise SettingsError(f"`{key}` {where} must be a mapping")
    return value


def _opt_str(section: Mapping[str, Any], key: str, where: str) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"routing.{key} {where} must be a model name")
    return value


def _mapping(
    env: Mapping[str, str], routing: Mapping[str, Any], where: str
) -> dict[str, str] | None:
    raw = env.get("ROUTELLM_MAPPING")
    example = '\'{"LABEL_0": "gpt-4o", "LABEL_1": "gpt-4o-mini", "LABEL_2": "gpt-4o-mini"}\''
    if raw:
        name = "ROUTELLM_MAPPING"
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SettingsError(
                f"ROUTELLM_MAPPING is not valid JSON ({exc.msg} at char {exc.pos}): "
                f"write it as {example}"
            ) from None
    else:
        name = f"routing.mapping {where}".strip()
        value = routing.get("mapping")
        if value is None:
            return None
    if not isinstance(value, dict) or not value:
        raise SettingsError(f"{name} must be an object of label → model, e.g. {example}")
    for label, model in value.items():
        if not LABEL_RE.match(str(label)):
            raise SettingsError(
                f"{name}: {label!r} is not a classifier label: use LABEL_0, LABEL_1, LABEL_2"
            )
        if not isinstance(model, str) or not model.strip():
            raise SettingsError(f"{name}: {label} must map to a model name, e.g. {example}")
    return {str(k): v for k, v in value.items()}


def _fraction(env: Mapping[str, str], var: str, file_value: Any, default: float) -> float:
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


def _positive(env: Mapping[str, str], var: str, default: float, *, integer: bool = False) -> float:
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


def _base_url(url: Any, name: str) -> str:
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        raise SettingsError(f"{name}={url!r} must be an http(s) URL such as {DEFAULT_BASE_URL}")
    return url.rstrip("/")


def _substitute(value: str, env: Mapping[str, str], name: str) -> str:
    def one(match: re.Match[str]) -> str:
        var = match.group(1)
        if var not in env:
            raise SettingsError(
                f"{name} uses ${{{var}}}, which is not set: export {var} or remove it"
            )
        return env[var]

    return ENV_REF.sub(one, value)


def _upstreams(doc: Mapping[str, Any], env: Mapping[str, str], where: str) -> dict[str, Upstream]:
    found: dict[str, Upstream] = {}
    for name, spec in _section(doc, "upstreams", where).items():
        key = f"upstreams.{name} {where}"
        if not isinstance(spec, dict) or "base_url" not in spec:
            raise SettingsError(f"{key} needs a base_url, e.g. base_url: {DEFAULT_BASE_URL}")
        base_url = _base_url(_substitute(str(spec["base_url"]), env, key), f"{key}: base_url")
        api_key = spec.get("api_key")
        if api_key is not None:
            api_key = _substitute(str(api_key), env, f"{key}: api_key") or None
        found[str(name)] = Upstream(str(name), base_url, api_key)
    return found


def _models(
    doc: Mapping[str, Any], upstreams: Mapping[str, Upstream], where: str
) -> dict[str, ModelTarget]:
    found: dict[str, ModelTarget] = {}
    for name, spec in _section(doc, "models", where).items():
        key = f"models.{name} {where}"
        if not isinstance(spec, dict) or not isinstance(spec.get("upstream"), str):
            raise SettingsError(f"{key} needs `upstream: <name>` naming one of `upstreams:`")
        if spec["upstream"] not in upstreams:
            known = ", ".join(sorted(upstreams)) or "none defined"
            raise SettingsError(f"{key}: unknown upstream {spec['upstream']!r} (known: {known})")
        upstream_model = spec.get("model", name)
        if not isinstance(upstream_model, str) or not upstream_model:
            raise SettingsError(f"{key}: `model` must be the id the upstream expects")
        found[str(name)] = ModelTarget(str(name), spec["upstream"], upstream_model)
    return found


def from_environment(config_path: str | None = None) -> Settings:
    """Settings from this process's environment: what the CLI and the ASGI factory use."""
    return load_settings(os.environ, config_path)
