"""The generated reference covers the code: every `ROUTELLM_*` variable the code names, every
config key the settings parsers read (and every key the loader accepts), every subcommand and
flag, every route, header, reason and metric is listed, and described. A failure names the
missing thing and where to describe it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from classifier.settings import SettingsError
from gateway.reference import commands, config_keys, http_api, metrics, variables
from gateway.reference.pages import PAGES, pages
from gateway.settings.load import load_settings
from gateway.settings.routing import ROUTER_KEYS


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return pages()


def test_every_page_is_generated_with_its_tables(generated: dict[str, str]) -> None:
    assert set(generated) == set(PAGES)
    for path, text in generated.items():
        assert text.startswith("# "), path
        assert "|---|" in text, path


def test_every_variable_in_the_code_is_listed_and_described(generated: dict[str, str]) -> None:
    page = generated["reference/environment.md"]
    described = {v.name: v for v in variables.variables()}
    missing = [
        f"{name} (read in {', '.join(places[:2])}) has no description: "
        + variables.HOW_TO_DESCRIBE.format(name=name)
        for name, places in variables.variables_in_code().items()
        if name not in described
    ]
    assert missing == []
    empty = [name for name, v in described.items() if not v.meaning.strip()]
    assert empty == [], f"variables described with no meaning: {empty}"
    unlisted = [name for name in described if f"| `{name}` |" not in page]
    assert unlisted == []


def test_the_variables_found_in_the_code_include_the_known_ones() -> None:
    found = variables.variables_in_code()
    for name in ("ROUTELLM_BERT_MODEL", "ROUTELLM_LEDGER", "ROUTELLM_CLASSIFIER_API_KEY"):
        assert name in found
    # The harvest reads the real loader's defaults, not the dataclass's bare ones.
    rows = {v.name: v for v in variables.variables()}
    assert rows["ROUTELLM_STRONG_MODEL"].default == "gpt-4o"
    assert rows["ROUTELLM_MAX_BODY_BYTES"].default == "20971520 (20 MiB)"
    assert rows["ROUTELLM_CONVERSATION_POLICY"].type == "`per_turn` or `sticky` or `upgrade`"


def test_every_config_key_the_parsers_read_is_listed_and_described(
    generated: dict[str, str],
) -> None:
    page = generated["reference/configuration.md"]
    keys = config_keys.config_keys()
    names = {key.name for key in keys}
    missing = [
        f"config key {name!r} (read in {', '.join(places[:2])}) has no description: "
        + config_keys.HOW_TO_DESCRIBE.format(name=name)
        for name, places in config_keys.keys_in_code().items()
        if name not in names
    ]
    assert missing == []
    stale = sorted(names - set(config_keys.keys_in_code()))
    assert stale == [], f"described keys no settings parser reads: {stale}"
    empty = [key.path for key in keys if not (key.meaning and key.type and key.default)]
    assert empty == [], f"keys without a type, default or meaning: {empty}"
    unlisted = [key.path for key in keys if f"| `{key.path}` |" not in page]
    assert unlisted == []


def test_every_key_a_named_router_accepts_is_described() -> None:
    paths = {key.path for key in config_keys.config_keys()}
    missing = [
        f"routers.<name>.{key} has no description: " + config_keys.HOW_TO_DESCRIBE.format(name=key)
        for key in sorted(ROUTER_KEYS)
        if f"routers.<name>.{key}" not in paths
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("document", "section"),
    [("{unknown_key: 1}", ""), ("quality: {unknown_key: 1}", "quality.")],
)
def test_every_key_the_loader_accepts_in_a_section_is_described(
    document: str, section: str, tmp_path: Path
) -> None:
    """The loader's own refusal of an unknown key lists the keys it accepts there."""
    config = tmp_path / "gateway.yaml"
    config.write_text(document + "\n", encoding="utf-8")
    env = {"ROUTELLM_UPSTREAM_BASE_URL": "https://api.openai.com/v1"}
    with pytest.raises(SettingsError, match="unknown key 'unknown_key'") as refused:
        load_settings(env, str(config))
    accepted = re.findall(r"[a-z_]+", str(refused.value).rsplit(": use ", 1)[1])
    paths = {key.path for key in config_keys.config_keys()}
    assert accepted
    assert [f"{section}{key}" for key in accepted if f"{section}{key}" not in paths] == []


def test_every_command_and_flag_is_listed_and_described(generated: dict[str, str]) -> None:
    page = generated["reference/cli.md"]
    found = {command.prog: command for command in commands.commands()}
    for prog, places in commands.progs_in_code().items():
        assert prog in found, f"the parser {prog!r} in {places} is not in the reference"
        assert f"## `{prog}`" in page
    undescribed = [
        f"{command.prog} {flag.names[0]}: "
        + commands.HOW_TO_DESCRIBE.format(where=commands.progs_in_code()[command.prog][0])
        for command in found.values()
        for flag in command.flags
        if not flag.help
    ]
    assert undescribed == []
    for command in found.values():
        assert command.description, f"{command.prog}: its parser has no description="
        for flag in command.flags:
            assert f"`{flag.names[0]}`" in page


def test_the_cli_reference_reads_the_real_parsers() -> None:
    train = next(c for c in commands.commands() if c.prog == "routellm-gateway train")
    flags = {flag.names[0]: flag for flag in train.flags}
    assert flags["--data"].required
    assert flags["--device"].value == "`auto` or `cpu` or `cuda`"
    assert flags["--seed"].default == "0"


def test_every_route_is_listed_and_described(generated: dict[str, str]) -> None:
    page = generated["reference/http.md"]
    real = http_api.app()
    served = {
        (method, route.path)
        for route in real.routes
        for method in getattr(route, "methods", ())
        if method not in ("OPTIONS", "HEAD") and "{" not in route.path
    }
    listed = {(route.method, route.path) for route in http_api.routes()}
    assert served == listed
    undescribed = [f"{r.method} {r.path}" for r in http_api.routes() if not r.description]
    assert undescribed == [], (
        f"routes without a description: {undescribed}: give the handler a docstring "
        "(an API's endpoint: its module in gateway/apis/)"
    )
    for method, path in served:
        assert f"| {method} | `{path}` |" in page


def test_the_openapi_schema_is_the_apps() -> None:
    schema = http_api.openapi(http_api.app())
    assert "/v1/chat/completions" in (schema.paths or {})
    assert schema.info.title == "routellm-gateway"


def test_every_header_and_reason_is_described(generated: dict[str, str]) -> None:
    page = generated["reference/http.md"]
    headers = [
        f"{name} (in {places[0]}): {http_api.HEADERS_TO_DESCRIBE}"
        for name, places in http_api.headers_in_code().items()
        if name not in http_api.HEADERS
    ]
    assert headers == []
    reasons = [
        f"reason {reason!r}: {http_api.REASONS_TO_DESCRIBE}"
        for reason in http_api.reasons_in_code()
        if reason not in http_api.REASONS
    ]
    assert reasons == []
    for reason in http_api.reasons_in_code():
        assert f"| `{reason}` | {http_api.REASONS[reason]}" in page


def test_every_metric_is_listed_and_described(generated: dict[str, str]) -> None:
    page = generated["reference/metrics.md"]
    families = metrics.metrics()
    assert {"routellm_requests", "routellm_ledger_rows_written"} <= {f.name for f in families}
    undescribed = [f"{f.name}: {metrics.HOW_TO_DESCRIBE}" for f in families if not f.help]
    assert undescribed == []
    for family in families:
        assert f"`{family.name}" in page
    requests = next(f for f in families if f.name == "routellm_requests")
    assert requests.labels == ("model", "reason", "status")
