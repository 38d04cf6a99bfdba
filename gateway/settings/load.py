"""The gateway's settings as a whole: the frozen `Settings`, and `load_settings`, which builds it.

With its sections' parsers (`gateway.settings.upstreams`, `.routing`, `.accounts`), this is the
only code that reads the environment (the CLI hands it `os.environ`). Sources, in increasing
priority: built-in defaults, the YAML file (`--config` / `ROUTELLM_CONFIG`), then the `ROUTELLM_*`
variables. Anything invalid raises `SettingsError` with one line that names the variable (or the
file key) and says how to fix it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from classifier.logs import LogFormat
from classifier.settings import ClassifierSettings, SettingsError
from gateway.settings.accounts import (
    LedgerSettings,
    QualitySettings,
    apply_prices,
    read_baseline,
    read_ledger,
    read_quality,
)
from gateway.settings.base import DEFAULT_BASE_URL, config_section, http_url, positive
from gateway.settings.candidates import check_candidates
from gateway.settings.embeddings import read_embeddings
from gateway.settings.mf import DEFAULT_PAIR, read_mf_pair
from gateway.settings.routing import (
    ROUTER,
    SKIP_TAGS,
    RouterSpec,
    Tier,
    check_one_api,
    named_routers,
    parse_tags,
    priced,
    read_default_router,
    routed_sources,
    router_models,
)
from gateway.settings.upstreams import (
    DEFAULT_UPSTREAM,
    ModelTarget,
    Upstream,
    UpstreamKind,
    read_models,
    read_upstreams,
)
from routers.encoders import EmbeddingsApi

__all__ = ["ConversationPolicy", "Settings", "SettingsError", "load_settings"]

ConversationPolicy = Literal["per_turn", "sticky", "upgrade"]
"""How a conversation's turns share a model; see `gateway.routing.conversations`."""
TraceExporter = Literal["otlp", "console"]


@dataclass(frozen=True)
class Settings:
    """Everything the gateway needs, validated. Build it with `load_settings`."""

    upstreams: Mapping[str, Upstream]
    models: Mapping[str, ModelTarget]
    """Every model the gateway serves, by client-facing name."""
    mapping: Mapping[str, str] | None = None
    """`ROUTELLM_MAPPING` (JSON; `routing.mapping`): seed routing for `router`, top label →
    model, e.g. `{"LABEL_0": "gpt-4o", "LABEL_1": "gpt-4o-mini", "LABEL_2": "gpt-4o-mini"}`.
    Unset: `router` uses the win-rate rule."""
    threshold: float = 0.5
    """`ROUTELLM_THRESHOLD` (`routing.threshold`): 0 to 1. With a mapping: top score below it →
    fallback. Without: strong when P(LABEL_0) ≥ it."""
    fallback: str | None = None
    """`ROUTELLM_FALLBACK_MODEL` (`routing.fallback`): the model for routed requests below the
    threshold, on classifier failure, and when the routed upstream fails before its first
    byte. Default: the weak model (the last tier)."""
    strong: str | None = None
    """`ROUTELLM_STRONG_MODEL` (`routing.strong`): the strong model of RouteLLM's rule (and of
    `router-bert-<t>`)."""
    weak: str | None = None
    """`ROUTELLM_WEAK_MODEL` (`routing.weak`): the weak model of RouteLLM's rule."""
    classifier: ClassifierSettings = field(default_factory=lambda: ClassifierSettings.from_env({}))
    """In-process model or remote URL, dtype, batching, timeouts."""
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    """`ROUTELLM_API_KEYS`: comma-separated keys clients must send as `Authorization: Bearer`
    (or `x-api-key`); unset: no client auth."""
    upstream_timeout: float = 60.0
    """`ROUTELLM_UPSTREAM_TIMEOUT`: seconds to wait for an upstream's first byte (a whole
    non-streamed answer), and between two events of a stream."""
    connect_timeout: float = 10.0
    """`ROUTELLM_CONNECT_TIMEOUT`: seconds to open a connection to an upstream."""
    max_body_bytes: int = 20 * 1024 * 1024
    """`ROUTELLM_MAX_BODY_BYTES`: largest request body accepted (20 MiB admits a few base64
    images); larger → 413."""
    max_messages: int = 2048
    """`ROUTELLM_MAX_MESSAGES`: most messages one request may carry; more → 400."""
    classify_skip_tags: tuple[str, ...] = SKIP_TAGS
    """`ROUTELLM_CLASSIFY_SKIP_TAGS`: comma-separated wrapper tags whose blocks are not
    classified: agents' boilerplate around the user's words (`gateway.routing.human_text`).
    Empty: classify everything."""
    max_event_bytes: int = 16 * 1024 * 1024
    """`ROUTELLM_MAX_EVENT_BYTES`: largest upstream stream event (or line) relayed; past it the
    stream ends with an error event."""
    max_response_bytes: int = 64 * 1024 * 1024
    """`ROUTELLM_MAX_RESPONSE_BYTES`: largest non-streamed upstream answer read; past it → 502
    (or the fallback model)."""
    max_concurrency: int = 512
    """`ROUTELLM_MAX_CONCURRENCY`: requests in flight at once; beyond it → 429 with
    `Retry-After`."""
    breaker_failures: int = 5
    """`ROUTELLM_BREAKER_FAILURES`: consecutive failures that open an upstream's circuit
    breaker (per deployment, or per host for connection failures)."""
    breaker_cooldown: float = 30.0
    """`ROUTELLM_BREAKER_COOLDOWN`: seconds an open breaker skips its upstream before probing
    it again."""
    log_format: LogFormat = "text"
    """`ROUTELLM_LOG_FORMAT`: `text` or `json` for every line the process writes (uvicorn's
    included); one line per request, never keys or message content."""
    baseline: str | None = None
    """`ROUTELLM_BASELINE_MODEL` (`routing.baseline`): savings are measured against this model
    answering the same tokens. Default: the strong model, else LABEL_0's model."""
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    """The decision ledger behind `/v1/decisions`, `/v1/savings` and `/ui`."""
    admin_keys: tuple[str, ...] = field(default=(), repr=False)
    """`ROUTELLM_ADMIN_KEYS`: comma-separated Bearer keys for the admin routes (ledger data,
    dashboard, reload); unset while client keys are set: those routes answer 403."""
    tiers: tuple[Tier, ...] = ()
    """`ROUTELLM_TIERS` (JSON; `routing.tiers`): tiers of `router`, strongest first, e.g.
    `[{"model": "gpt-4o", "min_win_rate": 0.7}, {"model": "gpt-4o-mini"}]`."""
    routers: Mapping[str, RouterSpec] = field(default_factory=dict)
    """Every routed name (`router` and the config's `routers:`) → its rule."""
    conversation_policy: ConversationPolicy = "upgrade"
    """`ROUTELLM_CONVERSATION_POLICY`: `per_turn`, `sticky` or `upgrade`: whether later turns
    keep the conversation's model."""
    conversation_ttl: float = 3600.0
    """`ROUTELLM_CONVERSATION_TTL`: seconds after a conversation's last turn that its state is
    kept."""
    conversation_max_switches: int = 1
    """`ROUTELLM_CONVERSATION_MAX_SWITCHES`: under `upgrade`, how often a conversation may move
    to another model (each move loses the prompt cache)."""
    redis_url: str | None = field(default=None, repr=False)
    """`ROUTELLM_REDIS_URL`: `redis://` or `rediss://`; conversation state in Redis, shared by
    replicas. Unset: kept in this process."""
    redis_timeout: float = 0.05
    """`ROUTELLM_REDIS_TIMEOUT`: seconds one Redis operation may take before the request
    decides without it."""
    shutdown_grace: float = 30.0
    """`ROUTELLM_SHUTDOWN_GRACE`: seconds in-flight requests and streams may take to finish
    after SIGTERM (`/health` answers 503 `draining` meanwhile)."""
    tracing: TraceExporter | None = None
    """Where spans go (`OTEL_TRACES_EXPORTER`, or `otlp` when an OTLP endpoint is set); None:
    tracing is off and costs nothing."""
    quality: QualitySettings = field(default_factory=QualitySettings)
    """Shadow judging of routed requests (`quality:` in the config file)."""
    embeddings: EmbeddingsApi | None = field(default=None, repr=False)
    """`ROUTELLM_EMBEDDINGS_URL` (with `ROUTELLM_EMBEDDINGS_MODEL`, `ROUTELLM_EMBEDDINGS_API_KEY`
    and `ROUTELLM_EMBEDDINGS_TIMEOUT`): the OpenAI-compatible embeddings API that routers with a
    `remote:` encoder embed prompts with, called as `<url>/embeddings`. Unset: none."""
    mf_model: str | None = None
    """`ROUTELLM_MF_MODEL`: RouteLLM's MF checkpoint (a hub id or directory) that `router-mf-<t>`
    scores with, and routers of `kind: mf` without `classifier:`; unset: routellm/mf_gpt4_augmented
    (`router-mf-<t>` is then served once `ROUTELLM_EMBEDDINGS_URL` is set and it loads; start-up
    only fails on a checkpoint named here)."""
    mf_pair: tuple[str, str] = DEFAULT_PAIR
    """`ROUTELLM_MF_PAIR`: `strong,weak`, the two of the MF router's 64 models whose win rate it
    predicts, for `router-mf-<t>` and routers of `kind: mf` without `mf_pair:`; default
    RouteLLM's, gpt-4-1106-preview against mixtral-8x7b-instruct-v0.1."""

    def kind_of(self, model: str) -> UpstreamKind:
        """The API family of the upstream serving `model` (a key of `models`)."""
        return self.upstreams[self.models[model].upstream].kind


def load_settings(env: Mapping[str, str], config_path: str | None = None) -> Settings:
    """Build `Settings` from the environment and an optional YAML file; raise `SettingsError`."""
    path = config_path or env.get("ROUTELLM_CONFIG") or None
    doc = _read_yaml(path) if path else {}
    where = f"in {path}" if path else ""
    routing = config_section(doc, "routing", where)
    default_router = read_default_router(env, routing, where)

    upstreams = read_upstreams(doc, env, where)
    models = read_models(doc, upstreams, where)
    has_default = bool(env.get("ROUTELLM_UPSTREAM_BASE_URL")) or not path
    if has_default:
        upstreams[DEFAULT_UPSTREAM] = Upstream(
            DEFAULT_UPSTREAM,
            http_url(
                env.get("ROUTELLM_UPSTREAM_BASE_URL") or DEFAULT_BASE_URL,
                "ROUTELLM_UPSTREAM_BASE_URL",
            ),
            env.get("ROUTELLM_UPSTREAM_API_KEY") or env.get("OPENAI_API_KEY") or None,
        )
    extra = [m.strip() for m in env.get("ROUTELLM_MODELS", "").split(",") if m.strip()]
    sources = routed_sources(
        default_router.mapping, default_router.fallback, default_router.strong, default_router.weak
    )
    sources.update(
        {t.model: "ROUTELLM_TIERS" for t in default_router.tiers if t.model not in sources}
    )
    named = named_routers(doc, where)
    for spec in named.values():
        for model in router_models(spec):
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
    for spec in (default_router, *named.values()):
        check_one_api(spec, models, upstreams)
    check_candidates(
        {spec.name: spec.candidate for spec in (default_router, *named.values())}, set(named)
    )

    keys = tuple(k.strip() for k in env.get("ROUTELLM_API_KEYS", "").split(",") if k.strip())
    apply_prices(env, models)
    configured = env.get("ROUTELLM_BASELINE_MODEL") or routing.get("baseline") or None
    named = {name: priced(spec, models, configured) for name, spec in named.items()}
    baseline = read_baseline(
        env,
        routing=routing,
        where=where,
        models=models,
        strong=default_router.strong,
        mapping=default_router.mapping,
    )
    log_format = _log_format(env.get("ROUTELLM_LOG_FORMAT", "text").strip().lower() or "text")
    embeddings = read_embeddings(env, config_section(doc, "embeddings", where), upstreams, where)
    mf_model = env.get("ROUTELLM_MF_MODEL", "").strip() or None
    mf_users = [f"routers.{s.name}" for s in named.values() if s.classifier_kind == "mf"]
    if (mf_model or mf_users) and embeddings is None:
        raise SettingsError(
            f"{'ROUTELLM_MF_MODEL' if mf_model else mf_users[0]} asks for RouteLLM's MF router, "
            "which embeds prompts with an embeddings API: set ROUTELLM_EMBEDDINGS_URL to its base "
            "URL (called as <url>/embeddings), e.g. https://api.openai.com/v1, or name a "
            "configured upstream under `embeddings: {upstream: NAME}`"
        )
    return Settings(
        upstreams=upstreams,
        models=models,
        mapping=default_router.mapping,
        threshold=default_router.threshold,
        fallback=default_router.fallback,
        strong=default_router.strong,
        weak=default_router.weak,
        classifier=ClassifierSettings.from_env(env),
        api_keys=keys,
        upstream_timeout=positive(env, "ROUTELLM_UPSTREAM_TIMEOUT", 60.0),
        connect_timeout=positive(env, "ROUTELLM_CONNECT_TIMEOUT", 10.0),
        max_body_bytes=int(
            positive(env, "ROUTELLM_MAX_BODY_BYTES", 20 * 1024 * 1024, integer=True)
        ),
        max_messages=int(positive(env, "ROUTELLM_MAX_MESSAGES", 2048, integer=True)),
        classify_skip_tags=_skip_tags(env),
        max_event_bytes=int(
            positive(env, "ROUTELLM_MAX_EVENT_BYTES", 16 * 1024 * 1024, integer=True)
        ),
        max_response_bytes=int(
            positive(env, "ROUTELLM_MAX_RESPONSE_BYTES", 64 * 1024 * 1024, integer=True)
        ),
        max_concurrency=int(positive(env, "ROUTELLM_MAX_CONCURRENCY", 512, integer=True)),
        breaker_failures=int(positive(env, "ROUTELLM_BREAKER_FAILURES", 5, integer=True)),
        breaker_cooldown=positive(env, "ROUTELLM_BREAKER_COOLDOWN", 30.0),
        log_format=log_format,
        baseline=baseline,
        ledger=read_ledger(env),
        admin_keys=tuple(
            k.strip() for k in env.get("ROUTELLM_ADMIN_KEYS", "").split(",") if k.strip()
        ),
        tiers=default_router.tiers,
        routers={ROUTER: default_router, **named},
        conversation_policy=_conversation_policy(env),
        conversation_ttl=positive(env, "ROUTELLM_CONVERSATION_TTL", 3600.0),
        conversation_max_switches=int(
            positive(env, "ROUTELLM_CONVERSATION_MAX_SWITCHES", 1, integer=True)
        ),
        redis_url=_redis_url(env),
        redis_timeout=positive(env, "ROUTELLM_REDIS_TIMEOUT", 0.05),
        shutdown_grace=positive(env, "ROUTELLM_SHUTDOWN_GRACE", 30.0),
        tracing=_tracing(env),
        embeddings=embeddings,
        mf_model=mf_model,
        mf_pair=read_mf_pair(env.get("ROUTELLM_MF_PAIR"), "ROUTELLM_MF_PAIR") or DEFAULT_PAIR,
        quality=read_quality(
            doc,
            where,
            models,
            upstreams,
            (default_router, *named.values()),
            ledger_enabled=read_ledger(env).enabled,
        ),
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
    unknown = set(doc) - {"upstreams", "models", "routing", "routers", "quality", "embeddings"}
    if unknown:
        raise SettingsError(
            f"{path}: unknown key {sorted(unknown)[0]!r}: use upstreams, models, routing, "
            "routers, quality, embeddings"
        )
    return doc


def from_environment(config_path: str | None = None) -> Settings:
    """Settings from this process's environment: what the CLI and the ASGI factory use."""
    return load_settings(os.environ, config_path)


def _skip_tags(env: Mapping[str, str]) -> tuple[str, ...]:
    value = env.get("ROUTELLM_CLASSIFY_SKIP_TAGS")
    if value is None:
        return SKIP_TAGS
    try:
        return parse_tags(value)
    except ValueError as exc:
        raise SettingsError(
            f"ROUTELLM_CLASSIFY_SKIP_TAGS: {exc}: give comma-separated tag names, e.g. "
            "'system-reminder,environment_context' (empty: classify wrappers too)"
        ) from None


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
