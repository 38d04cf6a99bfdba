"""What each setting means, where no settings field's docstring already says it: the config
file's keys, and the variables that fill no single field. The documentation's reference pages
are generated from these tables and from the fields' docstrings (`gateway.reference`), and
`tests/docs/` fails, naming the missing entry, when a key or variable the code reads has none.

A new variable that fills a settings field: begin the field's docstring with its name in
backticks and a colon (`ROUTELLM_NEW`: what it does.); nothing here. A variable that fills no
single field, or a new config-file key: add a line to `VARIABLES` or `CONFIG_KEYS` below.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass

from gateway.settings.accounts import QualitySettings


@dataclass(frozen=True, slots=True)
class Described:
    """One variable or config key: its name (a key's dotted path, `<name>` for a name of your
    choosing, `[]` for each item of a list), the values it takes, its default and its meaning.
    With `field` (a settings dataclass and one of its fields) the empty parts come from that
    field: its type, its default, its docstring."""

    name: str
    type: str = ""
    default: str = ""
    meaning: str = ""
    field: tuple[builtins.type, str] | None = None


VARIABLES: tuple[Described, ...] = (
    Described(
        "ROUTELLM_CONFIG",
        "path",
        "unset",
        "The YAML config file (the same as `--config`); the variables override it.",
    ),
    Described(
        "ROUTELLM_UPSTREAM_BASE_URL",
        "http(s) URL",
        "https://api.openai.com/v1",
        "The default upstream: it serves every model the gateway knows that the config file "
        "does not place elsewhere. With a config file and no upstream for a model, set it.",
    ),
    Described(
        "ROUTELLM_UPSTREAM_API_KEY",
        "string",
        "`OPENAI_API_KEY`",
        "The default upstream's key, sent as `Authorization: Bearer`.",
    ),
    Described(
        "ROUTELLM_MODELS",
        "comma-separated names",
        "unset",
        "More model names clients may ask for directly, served by the default upstream.",
    ),
    Described(
        "ROUTELLM_PRICES",
        "JSON object",
        "unset",
        "Prices in USD per million tokens, by model, overriding the file's `price:`, e.g. "
        '`{"gpt-4o": {"input": 2.5, "output": 10, "cached_input": 1.25}}`.',
    ),
    Described(
        "OPENAI_API_KEY",
        "string",
        "unset",
        "The default upstream's key when `ROUTELLM_UPSTREAM_API_KEY` is unset.",
    ),
    Described(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "URL",
        "unset",
        "Turns tracing on: spans go over OTLP/HTTP to this collector, e.g. "
        "`http://collector:4318`. OpenTelemetry's other variables (`OTEL_TRACES_EXPORTER=otlp|"
        "console|none`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`, "
        "`OTEL_SDK_DISABLED`) apply as the SDK defines them.",
    ),
    Described(
        "ROUTELLM_EMBEDDINGS_MODEL",
        "string",
        "text-embedding-3-small",
        "The embeddings model asked of `ROUTELLM_EMBEDDINGS_URL` (a router directory whose "
        "encoder is `remote:<model>` asks for its own).",
    ),
    Described(
        "ROUTELLM_EMBEDDINGS_API_KEY",
        "string",
        "unset",
        "Sent to `ROUTELLM_EMBEDDINGS_URL` as `Authorization: Bearer`.",
    ),
    Described(
        "ROUTELLM_EMBEDDINGS_TIMEOUT",
        "seconds > 0",
        "5",
        "How long one embeddings call may take; past it the request goes to the router's "
        "fallback model (reason `classifier_error`).",
    ),
)
"""The variables that fill no single settings field, with everything said here."""

_CANDIDATE = "Under `routing:` and under each `routers.<name>:` alike."

CONFIG_KEYS: tuple[Described, ...] = (
    Described("upstreams", "mapping", "unset", "The servers models are sent to, by name."),
    Described(
        "upstreams.<name>.base_url",
        "http(s) URL",
        "required",
        "Base URL up to and including `/v1`. `${VAR}` is replaced by the variable's value.",
    ),
    Described(
        "upstreams.<name>.api_key",
        "string",
        "unset",
        "Sent as `Authorization: Bearer` (openai) or `x-api-key` (anthropic); `${VAR}` is "
        "replaced by the variable's value, so no key needs to be written in the file.",
    ),
    Described(
        "upstreams.<name>.kind",
        "`openai` or `anthropic`",
        "openai",
        "The APIs it serves: `openai` (chat, responses, completions, embeddings) or "
        "`anthropic` (messages).",
    ),
    Described("models", "mapping", "unset", "The model names clients may ask for, by name."),
    Described(
        "models.<name>.upstream", "upstream name", "required", "The upstream that serves it."
    ),
    Described(
        "models.<name>.model",
        "string",
        "the name",
        "The id sent upstream in the `model` field (e.g. `llama3.1:8b` for the name `llama3`).",
    ),
    Described(
        "models.<name>.price",
        "mapping",
        "unset: cost unknown",
        "Its price in USD per million tokens (`ROUTELLM_PRICES` overrides it).",
    ),
    Described("models.<name>.price.input", "number ≥ 0", "required", "USD per million input."),
    Described("models.<name>.price.output", "number ≥ 0", "required", "USD per million output."),
    Described(
        "models.<name>.price.cached_input",
        "number ≥ 0",
        "the input price",
        "USD per million input tokens read from the provider's prompt cache.",
    ),
    Described(
        "routing",
        "mapping",
        "unset",
        "The rule of `router`. Each key has a `ROUTELLM_*` variable, which overrides it.",
    ),
    Described(
        "routing.mapping",
        "label → model",
        "unset",
        "Top label → model (`ROUTELLM_MAPPING`); needs a `fallback`.",
    ),
    Described(
        "routing.threshold",
        "0 to 1",
        "0.5",
        "With a mapping: a top score below it → the fallback. Without: the strong model when "
        "P(LABEL_0) ≥ it (`ROUTELLM_THRESHOLD`).",
    ),
    Described(
        "routing.fallback",
        "model name",
        "the weak model",
        "Below the threshold, on classifier failure, and when the routed upstream fails before "
        "its first byte (`ROUTELLM_FALLBACK_MODEL`).",
    ),
    Described(
        "routing.strong",
        "model name",
        "gpt-4o",
        "RouteLLM's strong model (`ROUTELLM_STRONG_MODEL`).",
    ),
    Described(
        "routing.weak",
        "model name",
        "gpt-4o-mini",
        "RouteLLM's weak model (`ROUTELLM_WEAK_MODEL`).",
    ),
    Described(
        "routing.tiers",
        "list",
        "unset",
        "Several models, strongest first: the first tier whose `min_win_rate` ≤ P(LABEL_0) "
        "answers (`ROUTELLM_TIERS`).",
    ),
    Described("routing.tiers[].model", "model name", "required", "The tier's model."),
    Described(
        "routing.tiers[].min_win_rate",
        "0 to 1",
        "required but on the last tier",
        "The least P(LABEL_0) the tier answers; strictly decreasing; the last tier has none.",
    ),
    Described(
        "routing.baseline",
        "model name",
        "the strong model",
        "Savings are measured against this model (`ROUTELLM_BASELINE_MODEL`).",
    ),
    Described(
        "routing.candidate",
        "mapping",
        "unset",
        "Another router tried on live traffic beside this one. " + _CANDIDATE,
    ),
    Described(
        "routing.candidate.router",
        "router name",
        "required",
        "The candidate: a name under `routers:`. " + _CANDIDATE,
    ),
    Described(
        "routing.candidate.mode",
        "`shadow` or `canary`",
        "shadow",
        "`shadow`: its choice is recorded beside every decision, the client's answer never "
        "changes. `canary`: it decides a share of conversations. " + _CANDIDATE,
    ),
    Described(
        "routing.candidate.share",
        "0 to 1",
        "1.0 (shadow), 0.05 (canary)",
        "The share of requests (shadow) or conversations (canary) it sees. " + _CANDIDATE,
    ),
    Described(
        "routers",
        "mapping",
        "unset",
        "More routed names beside `router`, each with exactly one rule: `tiers`, `mapping` "
        "(with `fallback`), `strong` and `weak`, or `router` (a trained many-model directory) "
        "with `models`. No variable overrides them.",
    ),
    Described(
        "routers.<name>.router",
        "directory",
        "unset",
        "A many-model router's directory, as `routellm-gateway train --models ...` writes it: "
        "it predicts each model's quality, and the model with the best quality minus "
        "`cost_weight` × its relative price answers. Its `router.json` names its kind.",
    ),
    Described(
        "routers.<name>.models",
        "list of model names, or data name → model name",
        "required with `router`",
        "The configured models it chooses among (each needs a `price`); a mapping renames the "
        "training data's model names to configured ones. Only these are chosen.",
    ),
    Described(
        "routers.<name>.cost_weight",
        "number ≥ 0",
        "0",
        "The weight of price against predicted quality: value = quality − weight × the "
        "model's blended price (3 input : 1 output tokens) ÷ the dearest model's. 0 picks the "
        "best predicted quality; `router-<name>-<w>` or `x-routellm-cost-weight` override it.",
    ),
    Described("routers.<name>.mapping", "label → model", "unset", "As `routing.mapping`."),
    Described("routers.<name>.threshold", "0 to 1", "0.5", "As `routing.threshold`."),
    Described(
        "routers.<name>.fallback",
        "model name",
        "the weak model (the last tier)",
        "As `routing.fallback`; required with a mapping.",
    ),
    Described("routers.<name>.strong", "model name", "unset", "As `routing.strong`."),
    Described("routers.<name>.weak", "model name", "unset", "As `routing.weak`."),
    Described("routers.<name>.tiers", "list", "unset", "As `routing.tiers`."),
    Described(
        "routers.<name>.classifier",
        "directory or hub id",
        "the gateway's classifier",
        "The router's own checkpoint (from `train` or `distil`), loaded once however many "
        "routers name it.",
    ),
    Described(
        "routers.<name>.dtype",
        "`auto`, `float32`, `bfloat16` or `int8`",
        "`ROUTELLM_BERT_DTYPE`",
        "The dtype of its own checkpoint; only beside `classifier`, or beside `router` for "
        "its sentence encoder (`float32`, the default, or `int8`; both on ONNX Runtime).",
    ),
    Described("routers.<name>.candidate", "mapping", "unset", "As `routing.candidate`."),
    Described(
        "routers.<name>.kind",
        "`bert` or `mf`",
        "bert",
        "What scores the strong model's win rate for the router's rule: RouteLLM's BERT router "
        "(the gateway's classifier, or `classifier`) or its matrix-factorisation router (`mf`: "
        "`classifier` names its checkpoint, else `ROUTELLM_MF_MODEL`, else "
        "routellm/mf_gpt4_augmented; prompts are embedded by `ROUTELLM_EMBEDDINGS_URL`).",
    ),
    Described(
        "routers.<name>.mf_pair",
        "[strong, weak]: two of the MF router's 64 models",
        "`ROUTELLM_MF_PAIR`",
        "With `kind: mf`: the two models whose win rate the MF router predicts (/health lists "
        "the 64 under `mf_routers`).",
    ),
    Described(
        "embeddings",
        "mapping",
        "unset",
        "The OpenAI-compatible embeddings API that RouteLLM's MF router and many-model routers "
        "with a `remote:` encoder call (`<base_url>/embeddings`). `ROUTELLM_EMBEDDINGS_URL` and "
        "its neighbours override it.",
    ),
    Described(
        "embeddings.upstream",
        "upstream name",
        "unset",
        "A configured `openai` upstream whose base URL and key it uses.",
    ),
    Described(
        "embeddings.model",
        "string",
        "text-embedding-3-small",
        "The embeddings model asked for (`ROUTELLM_EMBEDDINGS_MODEL` overrides it).",
    ),
    Described(
        "embeddings.timeout",
        "seconds > 0",
        "5",
        "How long one call may take before the request goes to the router's fallback "
        "(`ROUTELLM_EMBEDDINGS_TIMEOUT` overrides it).",
    ),
    Described("quality", "mapping", "unset", "Shadow judging of live routed requests."),
    Described("quality.shadow_share", field=(QualitySettings, "shadow_share")),
    Described("quality.judge", field=(QualitySettings, "judge")),
    Described("quality.daily_budget_usd", field=(QualitySettings, "daily_budget_usd")),
    Described("quality.concurrency", field=(QualitySettings, "concurrency")),
    Described("quality.queue", field=(QualitySettings, "queue")),
    Described("quality.timeout", field=(QualitySettings, "timeout")),
)
"""Every key of the config file, in the order the reference lists them."""
