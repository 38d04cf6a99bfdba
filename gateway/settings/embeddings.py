"""The embeddings API (`embeddings:` in the file, `ROUTELLM_EMBEDDINGS_*`): what RouteLLM's MF
router and many-model routers with a `remote:` encoder embed prompts with.

    embeddings: {upstream: openai, model: text-embedding-3-small, timeout: 5}

A configured `openai` upstream lends its base URL and key; `ROUTELLM_EMBEDDINGS_URL` (with
`ROUTELLM_EMBEDDINGS_API_KEY`) replaces it, and the model's and timeout's variables override the
file's values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from classifier.settings import SettingsError
from gateway.settings.base import http_url, positive
from gateway.settings.upstreams import Upstream
from routers.encoders import EmbeddingsApi

DEFAULT_MODEL = "text-embedding-3-small"
DEFAULT_TIMEOUT = 5.0


def read_embeddings(
    env: Mapping[str, str],
    section: Mapping[str, Any],
    upstreams: Mapping[str, Upstream],
    where: str,
) -> EmbeddingsApi | None:
    """The embeddings API the variables and the file's `embeddings:` name; None: none is."""
    unknown = set(section) - {"upstream", "model", "timeout"}
    if unknown:
        raise SettingsError(
            f"embeddings {where}: unknown key {sorted(unknown)[0]!r}: use upstream, model, timeout"
        )
    url = env.get("ROUTELLM_EMBEDDINGS_URL", "").strip()
    key = env.get("ROUTELLM_EMBEDDINGS_API_KEY", "").strip() or None
    named = section.get("upstream")
    if not url and named is not None:
        upstream = upstreams.get(str(named))
        if upstream is None or upstream.kind != "openai":
            raise SettingsError(
                f"embeddings.upstream {where}: {named!r} is not an openai upstream of this "
                f"config: name one of {', '.join(sorted(upstreams))}"
            )
        url, key = upstream.base_url, key or upstream.api_key
    if not url:
        return None
    model = env.get("ROUTELLM_EMBEDDINGS_MODEL", "").strip() or section.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise SettingsError(f"embeddings.model {where}: a model name, e.g. {DEFAULT_MODEL}")
    given = {"embeddings.timeout": str(section["timeout"])} if "timeout" in section else {}
    timeout = positive(given, "embeddings.timeout", DEFAULT_TIMEOUT)
    return EmbeddingsApi(
        http_url(url, "ROUTELLM_EMBEDDINGS_URL"),
        model or DEFAULT_MODEL,
        key,
        positive(env, "ROUTELLM_EMBEDDINGS_TIMEOUT", timeout),
    )
