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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from classifier.logs import LogFormat
from classifier.settings import ClassifierSettings, SettingsError
from gateway.pricing import Price

__all__ = [
    "ConversationPolicy",
    "LedgerSettings",
    "ModelTarget",
    "QualitySettings",
    "RouterSpec",
    "Settings",
    "SettingsError",
    "Tier",
    "Upstream",
    "load_settings",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_STRONG = "gpt-4o"
DEFAULT_WEAK = "gpt-4o-mini"
DEFAULT_UPSTREAM = "default"
LABEL_RE = re.compile(r"^LABEL_\d+$")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ROUTER = "router"
ConversationPolicy = Literal["per_turn", "sticky", "upgrade"]
"""How a conversation's turns share a model; see `gateway.conversations`."""
TIERS_EXAMPLE = (
    '[{"model": "gpt-4o", "min_win_rate": 0.7}, {"model": "gpt-4o-mini", "min_win_rate": 0.3}, '
    '{"model": "llama3"}]'
)


UpstreamKind = Literal["openai", "anthropic"]
TraceExporter = Literal["otlp", "console"]
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


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """Where the decision ledger lives and what it keeps (`ROUTELLM_LEDGER*`)."""

    location: str | None = None
    """A SQLite file path or a `postgresql://` URL; None: a file in the user's state directory."""
    enabled: bool = True
    """False with `ROUTELLM_LEDGER=off`: nothing is recorded and the admin data routes say so."""
    retention_days: float = 30.0
    """Rows older than this are deleted."""
    store_prompts: bool = False
    """`ROUTELLM_LEDGER_PROMPTS=1`: also keep the classified text. Default: never stored."""


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
    """Shadow jobs running at once; a request sampled while all are busy is not judged."""
    timeout: float = 120.0
    """Seconds one shadow job (the shadow answer and the judge's verdict) may take."""

    @property
    def enabled(self) -> bool:
        return self.shadow_share > 0


@dataclass(frozen=True, slots=True)
class Tier:
    """One model of a tiered router: it answers when P(LABEL_0) ≥ `min_win_rate`."""

    model: str
    min_win_rate: float | None = None
    """None for the last (weakest) tier, which answers everything below the others."""


@dataclass(frozen=True, slots=True)
class RouterSpec:
    """One routed model name (`router`, or a name under `routers:`) and its rule: tiers when
    given, else the label mapping when given, else RouteLLM's strong/weak win-rate rule."""

    name: str
    fallback: str
    """Below the threshold, on classifier failure, and when the chosen upstream fails."""
    mapping: Mapping[str, str] | None = None
    threshold: float = 0.5
    strong: str | None = None
    weak: str | None = None
    tiers: tuple[Tier, ...] = ()

    @property
    def kind(self) -> Literal["tiers", "mapping", "winrate"]:
        if self.tiers:
            return "tiers"
        return "mapping" if self.mapping is not None else "winrate"


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
    max_event_bytes: int = 16 * 1024 * 1024
    """Largest upstream stream event (or line) relayed; past it the stream ends with an error."""
    max_response_bytes: int = 64 * 1024 * 1024
    """Largest non-streamed upstream answer read; past it → 502 (or the fallback model)."""
    max_concurrency: int = 512
    """Requests in flight at once; beyond it → 429 with Retry-After."""
    breaker_failures: int = 5
    """Consecutive failures that open an upstream's circuit breaker."""
    breaker_cooldown: float = 30.0
    """Seconds an open breaker skips its upstream before probing it again."""
    log_format: LogFormat = "text"
    """`text` or `json`: one line per request, never keys or message content."""
    baseline: str | None = None
    """Savings are measured against this model answering the same tokens (None: no baseline)."""
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    """The decision ledger behind `/v1/decisions`, `/v1/savings` and `/ui`."""
    admin_keys: tuple[str, ...] = field(default=(), repr=False)
    """Bearer keys for the admin data routes; empty with `api_keys` set: those routes answer 403."""

    def kind_of(self, model: str) -> UpstreamKind:
        """The API family of the upstream serving `model` (a key of `models`)."""
        return self.upstreams[self.models[model].upstream].kind

    tiers: tuple[Tier, ...] = ()
    """Tiers of `router`, strongest first (`routing.tiers` / `ROUTELLM_TIERS`)."""
    routers: Mapping[str, RouterSpec] = field(default_factory=dict)
    """Every routed name (`router` and the config's `routers:`) → its rule."""
    conversation_policy: ConversationPolicy = "upgrade"
    """`per_turn`, `sticky` or `upgrade`: whether later turns keep the conversation's model."""
    conversation_ttl: float = 3600.0
    """Seconds after a conversation's last turn that its state is kept."""
    redis_url: str | None = field(default=None, repr=False)
    """Conversation state in Redis, shared by replicas; None: kept in this process."""
    redis_timeout: float = 0.05
    """Seconds one Redis operation may take before the request decides without it."""
    shutdown_grace: float = 30.0
    tracing: TraceExporter | None = None
    """Where spans go (`OTEL_TRACES_EXPORTER`, or `otlp` when an OTLP endpoint is set); None:
    tracing is off and costs nothing."""
    """Seconds in-flight requests and streams may take to finish after SIGTERM."""
    quality: QualitySettings = field(default_factory=QualitySettings)
    """Shadow judging of routed requests (`quality:` in the config file)."""


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
    tiers = _tiers_from_env(env) or _tiers(routing.get("tiers"), f"routing.tiers {where}".strip())
    if tiers and mapping is not None:
        raise SettingsError(
            "ROUTELLM_TIERS (routing.tiers) and ROUTELLM_MAPPING (routing.mapping) are both set: "
            "`router` uses one rule, so keep only one of them"
        )
    if mapping is None and not strong and not weak and not tiers:
        strong, weak = DEFAULT_STRONG, DEFAULT_WEAK
    if bool(strong) != bool(weak):
        missing = "ROUTELLM_WEAK_MODEL" if strong else "ROUTELLM_STRONG_MODEL"
        raise SettingsError(
            f"{missing} is not set: the RouteLLM rule needs both a strong and a weak model"
        )
    fallback = (
        env.get("ROUTELLM_FALLBACK_MODEL")
        or _opt_str(routing, "fallback", where)
        or (tiers[-1].model if tiers else weak)
    )
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
    sources.update({t.model: "ROUTELLM_TIERS" for t in tiers if t.model not in sources})
    named = _named_routers(doc, where)
    for spec in named.values():
        for model in _router_models(spec):
            sources.setdefault(model, f"routers.{spec.name} {where}".strip())
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
    for reserved in (ROUTER, *named):
        if reserved in models:
            raise SettingsError(
                f"the model name {reserved!r} is reserved for routing: rename it {where}"
            )
    default_router = RouterSpec(ROUTER, fallback, mapping, threshold, strong, weak, tiers)
    for spec in (default_router, *named.values()):
        _one_api(spec, models, upstreams)

    keys = tuple(k.strip() for k in env.get("ROUTELLM_API_KEYS", "").split(",") if k.strip())
    _apply_prices(env, models)
    baseline = _baseline(
        env, routing=routing, where=where, models=models, strong=strong, mapping=mapping
    )
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
        max_event_bytes=int(
            _positive(env, "ROUTELLM_MAX_EVENT_BYTES", 16 * 1024 * 1024, integer=True)
        ),
        max_response_bytes=int(
            _positive(env, "ROUTELLM_MAX_RESPONSE_BYTES", 64 * 1024 * 1024, integer=True)
        ),
        max_concurrency=int(_positive(env, "ROUTELLM_MAX_CONCURRENCY", 512, integer=True)),
        breaker_failures=int(_positive(env, "ROUTELLM_BREAKER_FAILURES", 5, integer=True)),
        breaker_cooldown=_positive(env, "ROUTELLM_BREAKER_COOLDOWN", 30.0),
        log_format=log_format,
        baseline=baseline,
        ledger=_ledger(env),
        admin_keys=tuple(
            k.strip() for k in env.get("ROUTELLM_ADMIN_KEYS", "").split(",") if k.strip()
        ),
        tiers=tiers,
        routers={ROUTER: default_router, **named},
        conversation_policy=_conversation_policy(env),
        conversation_ttl=_positive(env, "ROUTELLM_CONVERSATION_TTL", 3600.0),
        redis_url=_redis_url(env),
        redis_timeout=_positive(env, "ROUTELLM_REDIS_TIMEOUT", 0.05),
        shutdown_grace=_positive(env, "ROUTELLM_SHUTDOWN_GRACE", 30.0),
        tracing=_tracing(env),
        quality=_quality(
            doc,
            where,
            models,
            upstreams,
            (default_router, *named.values()),
            ledger_enabled=_ledger(env).enabled,
        ),
    )


def _one_api(
    spec: RouterSpec, models: Mapping[str, ModelTarget], upstreams: Mapping[str, Upstream]
) -> None:
    """A router chooses among models of one API: a request arrives on one and goes upstream on
    the same one, so an Anthropic model cannot answer a router called on Chat Completions."""
    kinds = {upstreams[models[m].upstream].kind: m for m in _router_models(spec)}
    if len(kinds) > 1:
        raise SettingsError(
            f"router {spec.name!r} mixes APIs: {kinds['openai']!r} is an openai model and "
            f"{kinds['anthropic']!r} an anthropic one; a router chooses among models of one "
            "upstream kind (define a router per API under `routers:`)"
        )


def _tracing(env: Mapping[str, str]) -> TraceExporter | None:
    """OpenTelemetry's own variables: off unless an exporter or an OTLP endpoint is named."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not raw:
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return "otlp" if any(env.get(var) for var in endpoints) else None
    if raw == "none":
        return None
    if raw == "otlp":
        return "otlp"
    if raw == "console":
        return "console"
    raise SettingsError(
        f"OTEL_TRACES_EXPORTER={raw!r} is not supported by the gateway: use otlp (OTLP/HTTP, "
        "see OTEL_EXPORTER_OTLP_ENDPOINT), console or none"
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
    unknown = set(doc) - {"upstreams", "models", "routing", "routers", "quality"}
    if unknown:
        raise SettingsError(
            f"{path}: unknown key {sorted(unknown)[0]!r}: use upstreams, models, routing, "
            "routers, quality"
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
    env: Mapping[str, str], routing: Mapping[str, Any], where: str, key: str = "routing.mapping"
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
        name = f"{key} {where}".strip()
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
        kind = spec.get("kind", "openai")
        if kind not in UPSTREAM_KINDS:
            raise SettingsError(f"{key}: kind {kind!r} is not supported: use openai or anthropic")
        found[str(name)] = Upstream(str(name), base_url, api_key, kind)
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
        price = _price(spec["price"], f"{key}: price") if "price" in spec else None
        found[str(name)] = ModelTarget(str(name), spec["upstream"], upstream_model, price)
    return found


def _price(spec: Any, name: str) -> Price:
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


def _apply_prices(env: Mapping[str, str], models: dict[str, ModelTarget]) -> None:
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
        models[name] = replace(models[name], price=_price(spec, f"ROUTELLM_PRICES: {name}"))


def _baseline(
    env: Mapping[str, str],
    *,
    routing: Mapping[str, Any],
    where: str,
    models: Mapping[str, ModelTarget],
    strong: str | None,
    mapping: Mapping[str, str] | None,
) -> str | None:
    explicit = env.get("ROUTELLM_BASELINE_MODEL") or _opt_str(routing, "baseline", where)
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


def _ledger(env: Mapping[str, str]) -> LedgerSettings:
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


def from_environment(config_path: str | None = None) -> Settings:
    """Settings from this process's environment: what the CLI and the ASGI factory use."""
    return load_settings(os.environ, config_path)


def _conversation_policy(env: Mapping[str, str]) -> ConversationPolicy:
    raw = env.get("ROUTELLM_CONVERSATION_POLICY", "").strip().lower() or "upgrade"
    for policy in get_args(ConversationPolicy):
        if raw == policy:
            return policy  # type: ignore[no-any-return]
    raise SettingsError(
        f"ROUTELLM_CONVERSATION_POLICY={raw!r} is not supported: use per_turn, sticky or upgrade"
    )


def _redis_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("ROUTELLM_REDIS_URL", "").strip()
    if not raw:
        return None
    if not re.match(r"^rediss?://[^\s]+$", raw):
        raise SettingsError(
            "ROUTELLM_REDIS_URL must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379/0"
        )
    return raw


def _tiers_from_env(env: Mapping[str, str]) -> tuple[Tier, ...]:
    raw = env.get("ROUTELLM_TIERS", "").strip()
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"ROUTELLM_TIERS is not valid JSON ({exc.msg} at char {exc.pos}): "
            f"write it as '{TIERS_EXAMPLE}'"
        ) from None
    return _tiers(value, "ROUTELLM_TIERS")


def _tiers(value: Any, name: str) -> tuple[Tier, ...]:
    """Validated tiers: at least two, strongest first, `min_win_rate` strictly decreasing, the
    last one without (it takes everything below)."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) < 2:
        raise SettingsError(f"{name} must be a list of at least two tiers, e.g. {TIERS_EXAMPLE}")
    tiers = []
    for i, item in enumerate(value):
        last = i == len(value) - 1
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("model"), str)
            or not item["model"]
        ):
            raise SettingsError(
                f"{name}[{i}] must be an object with a `model`, e.g. {TIERS_EXAMPLE}"
            )
        extra = set(item) - {"model", "min_win_rate"}
        if extra:
            raise SettingsError(
                f"{name}[{i}]: unknown key {sorted(extra)[0]!r}: use model, min_win_rate"
            )
        rate = item.get("min_win_rate")
        if last:
            if rate is not None:
                raise SettingsError(
                    f"{name}[{i}]: the last tier takes every request below the others, so it "
                    "has no min_win_rate: remove it"
                )
            tiers.append(Tier(item["model"]))
            continue
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise SettingsError(f"{name}[{i}].min_win_rate must be a number between 0 and 1")
        previous = tiers[-1].min_win_rate if tiers else None
        if previous is not None and rate >= previous:
            raise SettingsError(
                f"{name}[{i}].min_win_rate={rate} is not below the tier before it ({previous}): "
                "list tiers strongest first, each with a lower min_win_rate"
            )
        tiers.append(Tier(item["model"], float(rate)))
    return tuple(tiers)


ROUTER_KEYS = frozenset({"mapping", "threshold", "fallback", "strong", "weak", "tiers"})


def _named_routers(doc: Mapping[str, Any], where: str) -> dict[str, RouterSpec]:
    """The config's `routers:`: each routed name with the keys of `routing` (no variables)."""
    found: dict[str, RouterSpec] = {}
    for raw_name, section in _section(doc, "routers", where).items():
        name = str(raw_name)
        key = f"routers.{name} {where}".strip()
        if name == ROUTER or name.startswith("router-bert-"):
            raise SettingsError(f"{key}: the name {name!r} is reserved: choose another name")
        if not isinstance(section, dict):
            raise SettingsError(f"{key} must be a mapping with the keys of `routing`")
        unknown = set(section) - ROUTER_KEYS
        if unknown:
            raise SettingsError(
                f"{key}: unknown key {sorted(unknown)[0]!r}: use {', '.join(sorted(ROUTER_KEYS))}"
            )
        mapping = (
            _mapping({}, section, where, f"routers.{name}.mapping")
            if "mapping" in section
            else None
        )
        threshold = _fraction({}, f"{key}: threshold", section.get("threshold"), 0.5)
        strong = _opt_str(section, "strong", where)
        weak = _opt_str(section, "weak", where)
        tiers = _tiers(section.get("tiers"), f"{key}: tiers")
        rules = sum((bool(tiers), mapping is not None, bool(strong or weak)))
        if rules != 1:
            raise SettingsError(
                f"{key} needs exactly one rule: `tiers`, `mapping` (with `fallback`), or "
                "`strong` and `weak`"
            )
        if bool(strong) != bool(weak):
            raise SettingsError(f"{key} needs both `strong` and `weak`")
        fallback = _opt_str(section, "fallback", where) or (tiers[-1].model if tiers else weak)
        if fallback is None:
            raise SettingsError(f"{key}: with a mapping, name the `fallback` model")
        found[name] = RouterSpec(name, fallback, mapping, threshold, strong, weak, tiers)
    return found


def _router_models(spec: RouterSpec) -> list[str]:
    """Every model a router can pick."""
    picked = [*(spec.mapping or {}).values(), spec.fallback, *(t.model for t in spec.tiers)]
    return picked + [m for m in (spec.strong, spec.weak) if m]


QUALITY_EXAMPLE = "quality: {shadow_share: 0.05, judge: gpt-4o, daily_budget_usd: 1.0}"


def _quality(
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
    section = _section(doc, "quality", where)
    if not section:
        return QualitySettings()
    key = f"quality {where}".strip()
    allowed = {"shadow_share", "judge", "daily_budget_usd", "concurrency", "timeout"}
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
    judge = section.get("judge")
    if judge is not None and (not isinstance(judge, str) or judge not in models):
        known = ", ".join(sorted(models))
        raise SettingsError(
            f"{key}: judge {judge!r} is not a model the gateway serves: name one of "
            f"`models:` ({known})"
        )
    quality = QualitySettings(share, judge, budget, int(concurrency), timeout)
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
