"""Prices, usage and cost; the savings settings (prices, baseline, ledger, admin keys)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from classifier.settings import SettingsError
from gateway.ledger.pricing import Usage, cost
from gateway.settings.load import Settings, load_settings
from gateway.settings.prices import Price


def test_cost_prices_fresh_and_cached_input_and_output() -> None:
    price = Price(input=2.0, output=8.0, cached_input=0.5)
    assert cost(price, Usage(1_000_000, 500_000, cached_input_tokens=400_000)) == pytest.approx(
        0.6 * 2.0 + 0.4 * 0.5 + 0.5 * 8.0
    )


def test_cached_input_without_its_own_price_costs_the_input_price() -> None:
    usage = Usage(1000, 0, cached_input_tokens=600)
    assert cost(Price(3.0, 0.0), usage) == pytest.approx(1000 * 3.0 / 1e6)


@pytest.mark.parametrize(
    ("price", "usage"), [(None, Usage(1, 1)), (Price(1, 1), None), (None, None)]
)
def test_unknown_price_or_usage_is_an_unknown_cost_never_zero(
    price: Price | None, usage: Usage | None
) -> None:
    assert cost(price, usage) is None


def test_usage_is_read_from_openai_chat_and_responses_shapes() -> None:
    chat = {
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    assert Usage.from_openai(chat) == Usage(10, 3, 4)
    responses = {
        "input_tokens": 7,
        "output_tokens": 2,
        "input_tokens_details": {"cached_tokens": 9},
    }
    assert Usage.from_openai(responses) == Usage(7, 2, 7)  # cached can never exceed input
    for bad in (
        None,
        {},
        {"prompt_tokens": "10", "completion_tokens": 1},
        {"prompt_tokens": -1, "completion_tokens": 1},
        [],
    ):
        assert Usage.from_openai(bad) is None


def test_prices_come_from_the_file_and_the_environment_overrides_them(
    tmp_path: Path, make_settings: Callable[..., Settings], config_file: Path
) -> None:
    doc = yaml.safe_load(config_file.read_text())
    doc["models"]["strong"]["price"] = {"input": 5, "output": 15}
    doc["models"]["weak"]["price"] = {"input": 0.1, "output": 0.4, "cached_input": 0.05}
    config_file.write_text(yaml.safe_dump(doc))
    settings = make_settings(ROUTELLM_PRICES='{"strong": {"input": 2.5, "output": 10}}')
    assert settings.models["strong"].price == Price(2.5, 10.0)
    assert settings.models["weak"].price == Price(0.1, 0.4, 0.05)
    assert settings.models["middle"].price is None
    assert settings.baseline == "strong"  # default: the strong model


def test_baseline_defaults_to_label_0s_model_and_can_be_named() -> None:
    mapping = '{"LABEL_0": "gpt-4o", "LABEL_1": "mini", "LABEL_2": "mini"}'
    env = {"ROUTELLM_MAPPING": mapping, "ROUTELLM_FALLBACK_MODEL": "mini"}
    assert load_settings(env).baseline == "gpt-4o"
    assert load_settings({**env, "ROUTELLM_BASELINE_MODEL": "mini"}).baseline == "mini"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ROUTELLM_PRICES": "{nope"}, "ROUTELLM_PRICES is not valid JSON"),
        ({"ROUTELLM_PRICES": "[]"}, "must be an object"),
        ({"ROUTELLM_PRICES": '{"ghost": {"input": 1, "output": 1}}'}, "prices 'ghost'"),
        ({"ROUTELLM_PRICES": '{"gpt-4o": {"input": 1}}'}, "needs input and output"),
        ({"ROUTELLM_PRICES": '{"gpt-4o": {"input": -1, "output": 1}}'}, "input=-1"),
        ({"ROUTELLM_PRICES": '{"gpt-4o": {"input": 1, "output": 1, "cache": 1}}'}, "'cache'"),
        ({"ROUTELLM_BASELINE_MODEL": "ghost"}, "ROUTELLM_BASELINE_MODEL names 'ghost'"),
        (
            {"ROUTELLM_LEDGER": "mysql://db/x"},
            "mysql://, which is not supported",
        ),
        ({"ROUTELLM_LEDGER_RETENTION_DAYS": "0"}, "positive number of days"),
        ({"ROUTELLM_LEDGER_PROMPTS": "maybe"}, "must be 1 or 0"),
    ],
)
def test_bad_savings_settings_fail_with_one_line(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert needle in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_price_in_the_file_is_checked(
    make_settings: Callable[..., Settings], config_file: Path
) -> None:
    doc = yaml.safe_load(config_file.read_text())
    doc["models"]["strong"]["price"] = {"input": "cheap", "output": 1}
    config_file.write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError, match=r"models.strong .*: price: input='cheap'"):
        make_settings()


def test_ledger_and_admin_settings() -> None:
    default = load_settings({})
    assert default.ledger.enabled
    assert default.ledger.location is None
    assert default.ledger.retention_days == 30
    assert not default.ledger.store_prompts
    off = load_settings({"ROUTELLM_LEDGER": "off"})
    assert not off.ledger.enabled
    pg = load_settings(
        {
            "ROUTELLM_LEDGER": "postgresql://u@127.0.0.1/db",
            "ROUTELLM_LEDGER_PROMPTS": "1",
            "ROUTELLM_LEDGER_RETENTION_DAYS": "7",
            "ROUTELLM_ADMIN_KEYS": "a, b",
        }
    )
    assert pg.ledger.location == "postgresql://u@127.0.0.1/db"
    assert pg.ledger.store_prompts
    assert pg.ledger.retention_days == 7
    assert pg.admin_keys == ("a", "b")
