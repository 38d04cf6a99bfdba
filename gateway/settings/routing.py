"""The routing part of the settings: `routing:` (the `router` name), `routers:` (named routers),
their tiers and label mappings, and the `ROUTELLM_*` variables that override `routing:`.

`gateway.settings.load.load_settings` calls these.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from classifier.settings import DtypeSetting, SettingsError
from gateway.settings.base import config_section, fraction, optional_model
from gateway.settings.candidates import Candidate, read_candidate
from gateway.settings.mf import read_kind
from gateway.settings.upstreams import ModelTarget, Upstream

ROUTER = "router"
"""The routed model name every gateway serves."""
MF_ROUTER = "router-mf"
"""The router of `router-mf-<t>`: RouteLLM's rule, scored by the MF router (`ROUTELLM_MF_MODEL`)."""
SKIP_TAGS = (
    "system-reminder",
    "environment_context",
    "user_instructions",
    "INSTRUCTIONS",
    "user_shell_command",
    "turn_aborted",
)
"""Wrapper tags whose blocks are never classified (`ROUTELLM_CLASSIFY_SKIP_TAGS`): Claude Code's
`system-reminder`; Codex's `environment_context`, `user_instructions` and AGENTS.md's
`INSTRUCTIONS`, and its records of shell commands and aborted turns."""


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
    classifier: str | None = None
    """The router's own checkpoint (a directory or hub id; `classifier:` under `routers:`);
    None: the gateway's (`ROUTELLM_BERT_MODEL` / `ROUTELLM_BERT_URL`)."""
    dtype: DtypeSetting | None = None
    """Its dtype (`dtype:` beside it); None: `ROUTELLM_BERT_DTYPE`. Beside `router:`, the
    sentence encoder's: `float32` (the default) or `int8`."""
    candidate: Candidate | None = None
    """Another router tried beside this one (`gateway.settings.candidates`)."""
    router: str | None = None
    """A trained router directory (`router:` under `routers:`; `routers.registry`): it
    predicts each model's quality, and the router picks among `models` by quality and price."""
    models: Mapping[str, str] | None = None
    """With `router`: the data's model names → the configured models it chooses among (only
    these are chosen)."""
    cost_weight: float = 0.0
    """With `router`: the default weight of price against predicted quality
    (`gateway.routing.weighing`); a request may override it."""
    baseline: str | None = None
    """With `router`: the model its savings are measured against: `routing.baseline` when
    set, else its most expensive model."""
    classifier_kind: Literal["bert", "mf"] = "bert"
    """`kind:` under `routers:`: what scores the win rate, RouteLLM's BERT router or its MF
    router (`routers.mf`; `classifier:` then names the MF checkpoint, else `ROUTELLM_MF_MODEL`,
    else routellm/mf_gpt4_augmented)."""
    mf_pair: tuple[str, str] | None = None
    """`mf_pair:` with `kind: mf`: the two of its 64 models it scores (`gateway.settings.mf`);
    None: `ROUTELLM_MF_PAIR`'s, else RouteLLM's."""

    @property
    def kind(self) -> Literal["tiers", "mapping", "winrate", "quality"]:
        if self.router is not None:
            return "quality"
        if self.tiers:
            return "tiers"
        return "mapping" if self.mapping is not None else "winrate"


DEFAULT_STRONG = "gpt-4o"
DEFAULT_WEAK = "gpt-4o-mini"
LABEL_RE = re.compile(r"^LABEL_\d+$")
TIERS_EXAMPLE = (
    '[{"model": "gpt-4o", "min_win_rate": 0.7}, {"model": "gpt-4o-mini", "min_win_rate": 0.3}, '
    '{"model": "llama3"}]'
)
ROUTER_KEYS = frozenset(
    {
        "mapping",
        "threshold",
        "fallback",
        "strong",
        "weak",
        "tiers",
        "classifier",
        "dtype",
        "candidate",
        "router",
        "models",
        "cost_weight",
        "kind",
        "mf_pair",
    }
)


def read_default_router(
    env: Mapping[str, str], routing: Mapping[str, Any], where: str
) -> RouterSpec:
    """The rule of `router`: `routing:` in the file, overridden by the `ROUTELLM_*` variables;
    with nothing set, RouteLLM's rule between the default strong and weak models."""
    mapping = read_mapping(env, routing, where)
    threshold = fraction(env, "ROUTELLM_THRESHOLD", routing.get("threshold"), 0.5)
    strong = env.get("ROUTELLM_STRONG_MODEL") or optional_model(routing, "strong", where)
    weak = env.get("ROUTELLM_WEAK_MODEL") or optional_model(routing, "weak", where)
    tiers = tiers_from_env(env) or read_tiers(
        routing.get("tiers"), f"routing.tiers {where}".strip()
    )
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
        or optional_model(routing, "fallback", where)
        or (tiers[-1].model if tiers else weak)
    )
    if fallback is None:
        raise SettingsError(
            "ROUTELLM_FALLBACK_MODEL is not set: with ROUTELLM_MAPPING, name the model used below "
            "ROUTELLM_THRESHOLD and when the classifier or an upstream fails"
        )
    candidate = read_candidate(routing, f"routing {where}".strip())
    return RouterSpec(
        ROUTER, fallback, mapping, threshold, strong, weak, tiers, candidate=candidate
    )


def priced(spec: RouterSpec, models: Mapping[str, ModelTarget], baseline: str | None) -> RouterSpec:
    """A many-model router weighs its models' prices: each must have one. Its savings baseline
    is `baseline` (configured) or its most expensive model."""
    if spec.router is None:
        return spec
    blended = {}
    for name in (spec.models or {}).values():
        price = models[name].price
        if price is None:
            raise SettingsError(
                f"router {spec.name!r} weighs prices, and {name!r} has none: add "
                f"`price: {{input: ..., output: ...}}` (USD per million tokens) under "
                f"models.{name}, or set it in ROUTELLM_PRICES"
            )
        blended[name] = price.blended
    return replace(spec, baseline=baseline or max(blended, key=blended.__getitem__))


def check_one_api(
    spec: RouterSpec, models: Mapping[str, ModelTarget], upstreams: Mapping[str, Upstream]
) -> None:
    """A router chooses among models of one API: a request arrives on one and goes upstream on
    the same one, so an Anthropic model cannot answer a router called on Chat Completions."""
    kinds = {upstreams[models[m].upstream].kind: m for m in router_models(spec)}
    if len(kinds) > 1:
        raise SettingsError(
            f"router {spec.name!r} mixes APIs: {kinds['openai']!r} is an openai model and "
            f"{kinds['anthropic']!r} an anthropic one; a router chooses among models of one "
            "upstream kind (define a router per API under `routers:`)"
        )


def routed_sources(
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


def read_mapping(
    env: Mapping[str, str], routing: Mapping[str, Any], where: str, key: str = "routing.mapping"
) -> dict[str, str] | None:
    """The label → model mapping: `ROUTELLM_MAPPING`, else the file's `key`; None when neither."""
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


def tiers_from_env(env: Mapping[str, str]) -> tuple[Tier, ...]:
    """The tiers in `ROUTELLM_TIERS` (JSON); empty when unset."""
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
    return read_tiers(value, "ROUTELLM_TIERS")


def read_tiers(value: Any, name: str) -> tuple[Tier, ...]:
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


def named_routers(doc: Mapping[str, Any], where: str) -> dict[str, RouterSpec]:
    """The config's `routers:`: each routed name with the keys of `routing` (no variables)."""
    found: dict[str, RouterSpec] = {}
    for raw_name, section in config_section(doc, "routers", where).items():
        name = str(raw_name)
        key = f"routers.{name} {where}".strip()
        if name == ROUTER or name.startswith(("router-bert-", "router-mf")):
            raise SettingsError(f"{key}: the name {name!r} is reserved: choose another name")
        if not isinstance(section, dict):
            raise SettingsError(f"{key} must be a mapping with the keys of `routing`")
        unknown = set(section) - ROUTER_KEYS
        if unknown:
            raise SettingsError(
                f"{key}: unknown key {sorted(unknown)[0]!r}: use {', '.join(sorted(ROUTER_KEYS))}"
            )
        mapping = (
            read_mapping({}, section, where, f"routers.{name}.mapping")
            if "mapping" in section
            else None
        )
        threshold = fraction({}, f"{key}: threshold", section.get("threshold"), 0.5)
        strong = optional_model(section, "strong", where)
        weak = optional_model(section, "weak", where)
        tiers = read_tiers(section.get("tiers"), f"{key}: tiers")
        directory, choices, cost_weight = read_many(section, key)
        rules = sum((bool(tiers), mapping is not None, bool(strong or weak), bool(directory)))
        if rules != 1:
            raise SettingsError(
                f"{key} needs exactly one rule: `tiers`, `mapping` (with `fallback`), "
                "`strong` and `weak`, or `router` (a trained directory) with `models`"
            )
        if bool(strong) != bool(weak):
            raise SettingsError(f"{key} needs both `strong` and `weak`")
        last = [*choices.values()][-1] if choices else None
        fallback = optional_model(section, "fallback", where) or (
            tiers[-1].model if tiers else weak or last
        )
        if fallback is None:
            raise SettingsError(f"{key}: with a mapping, name the `fallback` model")
        checkpoint, dtype = _own_classifier(section, key)
        kind, mf_pair = read_kind(section, key, bool(directory or dtype))
        found[name] = RouterSpec(
            name,
            fallback,
            mapping,
            threshold,
            strong,
            weak,
            tiers,
            checkpoint,
            dtype,
            read_candidate(section, key),
            directory,
            choices,
            cost_weight,
            classifier_kind=kind,
            mf_pair=mf_pair,
        )
    return found


def read_many(section: Mapping[str, Any], key: str) -> tuple[str | None, dict[str, str], float]:
    """A many-model router's `router` (directory), `models` (a list of configured names, or a
    map from the data's names to them) and `cost_weight` (a number ≥ 0, default 0)."""
    directory = section.get("router")
    raw_models = section.get("models")
    raw_weight = section.get("cost_weight")
    if directory is None:
        for extra in ("models", "cost_weight"):
            if section.get(extra) is not None:
                raise SettingsError(f"{key}: {extra} goes with `router:` (a trained directory)")
        return None, {}, 0.0
    if not isinstance(directory, str) or not directory.strip():
        raise SettingsError(f"{key}: router must be the directory `routellm-gateway train` wrote")
    example = "models: [gpt-4o, gpt-4o-mini, llama3] (or {data-name: configured-name, ...})"
    if isinstance(raw_models, list):
        choices = {str(m): str(m) for m in raw_models if isinstance(m, str) and m.strip()}
        complete = len(choices) == len(raw_models)
    elif isinstance(raw_models, dict):
        choices = {str(k): v for k, v in raw_models.items() if isinstance(v, str) and v.strip()}
        complete = len(choices) == len(raw_models)
    else:
        choices, complete = {}, False
    if not complete or len(choices) < 2 or len(set(choices.values())) != len(choices):
        raise SettingsError(f"{key}: `router` needs at least two distinct models: {example}")
    if key.split(maxsplit=1)[0].removeprefix("routers.") in ("bert", "mf"):
        raise SettingsError(f"{key}: 'router-bert-' and 'router-mf-' are RouteLLM's: rename it")
    return directory, choices, read_cost_weight(raw_weight, f"{key}: cost_weight")


def read_cost_weight(raw: Any, name: str) -> float:
    """A cost weight: a finite number ≥ 0 (None: 0)."""
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(raw, bool) or not 0.0 <= value < math.inf:
        raise SettingsError(f"{name}={raw!r} must be a number ≥ 0, e.g. 0.2 (0: best quality)")
    return value


def _own_classifier(section: Mapping[str, Any], key: str) -> tuple[str | None, DtypeSetting | None]:
    checkpoint = section.get("classifier")
    if checkpoint is not None and (not isinstance(checkpoint, str) or not checkpoint.strip()):
        raise SettingsError(f"{key}: classifier must be a checkpoint directory or hub id")
    dtype = section.get("dtype")
    if dtype is None:
        return checkpoint, None
    if section.get("router") is not None:
        # A many-model router's sentence encoder runs on ONNX Runtime in one of these.
        if dtype in ("float32", "int8"):
            return checkpoint, dtype  # type: ignore[no-any-return]
        raise SettingsError(f"{key}: dtype {dtype!r} beside `router:`: use float32 or int8")
    if checkpoint is None:
        raise SettingsError(
            f"{key}: dtype goes beside the router's own `classifier:` (or its `router:`)"
        )
    for allowed in get_args(DtypeSetting):
        if dtype == allowed:
            return checkpoint, allowed  # type: ignore[no-any-return]
    raise SettingsError(f"{key}: dtype {dtype!r}: use {', '.join(get_args(DtypeSetting))}")


def router_models(spec: RouterSpec) -> list[str]:
    """Every model a router can pick."""
    picked = [*(spec.mapping or {}).values(), spec.fallback, *(t.model for t in spec.tiers)]
    picked += [*(spec.models or {}).values()]
    return picked + [m for m in (spec.strong, spec.weak) if m]


def parse_tags(value: str) -> tuple[str, ...]:
    """`ROUTELLM_CLASSIFY_SKIP_TAGS`: comma-separated tag names, with or without `<>`."""
    return tuple(_names(part.strip().strip("<>/").strip() for part in value.split(",")))


def _names(parts: Iterable[str]) -> Iterable[str]:
    for part in parts:
        if part:
            if not re.fullmatch(r"[A-Za-z_][\w.:-]*", part):
                raise ValueError(f"{part!r} is not a tag name")
            yield part
