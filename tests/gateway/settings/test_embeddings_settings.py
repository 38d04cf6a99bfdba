"""The embeddings API (`embeddings:` in the file, `ROUTELLM_EMBEDDINGS_*`): a configured upstream
lends its URL and key, the variables override the file, and a wrong name says what to write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.settings.load import SettingsError, load_settings


def config(tmp_path: Path, embeddings: dict[str, Any]) -> str:
    doc = {
        "upstreams": {
            "openai": {"base_url": "https://api.openai.com/v1", "api_key": "sk-file"},
            "claude": {"base_url": "https://api.anthropic.com/v1", "kind": "anthropic"},
        },
        "models": {"gpt-4o": {"upstream": "openai"}, "gpt-4o-mini": {"upstream": "openai"}},
        "embeddings": embeddings,
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def api_fields(env: dict[str, str], path: str) -> tuple[str, str | None, str, float]:
    """The embeddings API the settings load: URL, key, model and timeout."""
    api = load_settings(env, path).embeddings
    assert api is not None
    return (api.url, api.api_key, api.model, api.timeout)


def test_an_upstream_lends_its_url_and_key_and_the_variables_override(tmp_path: Path) -> None:
    path = config(tmp_path, {"upstream": "openai", "model": "text-embedding-3-large", "timeout": 2})
    assert api_fields({}, path) == (
        "https://api.openai.com/v1",
        "sk-file",
        "text-embedding-3-large",
        2.0,
    )
    env = {
        "ROUTELLM_EMBEDDINGS_URL": "http://127.0.0.1:8080/v1",
        "ROUTELLM_EMBEDDINGS_API_KEY": "tei-key",
        "ROUTELLM_EMBEDDINGS_TIMEOUT": "0.5",
    }
    assert api_fields(env, path) == (
        "http://127.0.0.1:8080/v1",
        "tei-key",
        "text-embedding-3-large",
        0.5,
    )
    assert load_settings({}, config(tmp_path, {})).embeddings is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"upstream": "nowhere"}, "'nowhere' is not an openai upstream of this config"),
        ({"upstream": "claude"}, "'claude' is not an openai upstream"),
        ({"upstream": "openai", "dims": 3}, "unknown key 'dims': use upstream, model, timeout"),
        ({"upstream": "openai", "timeout": -1}, "embeddings.timeout='-1' must be a positive"),
    ],
)
def test_a_wrong_embeddings_section_says_what_to_write(
    tmp_path: Path, section: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({}, config(tmp_path, section))
