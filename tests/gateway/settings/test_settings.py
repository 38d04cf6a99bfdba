"""Settings: environment over file, validation with one-line fixes, and the CLI's exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from classifier.settings import SettingsError
from gateway.settings.base import DEFAULT_BASE_URL
from gateway.settings.load import load_settings

SEED_MAPPING = {"LABEL_0": "chatglm-6b", "LABEL_1": "GPT3.5 Turbo", "LABEL_2": "Llama-2-7B"}


def test_defaults_route_between_two_openai_models() -> None:
    s = load_settings({"OPENAI_API_KEY": "sk-test"})
    assert (s.strong, s.weak, s.fallback, s.mapping) == (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-mini",
        None,
    )
    assert s.upstreams["default"].base_url == DEFAULT_BASE_URL
    assert s.upstreams["default"].api_key == "sk-test"
    assert set(s.models) == {"gpt-4o", "gpt-4o-mini"}
    assert "sk-test" not in repr(s)


def test_seed_environment() -> None:
    env = {
        "ROUTELLM_UPSTREAM_BASE_URL": "http://127.0.0.1:11434/v1/",
        "ROUTELLM_THRESHOLD": "0.6",
        "ROUTELLM_MAPPING": json.dumps(SEED_MAPPING),
        "ROUTELLM_FALLBACK_MODEL": "GPT3.5 Turbo",
        "ROUTELLM_MODELS": "extra-a, extra-b",
    }
    s = load_settings(env)
    assert s.threshold == 0.6
    assert s.mapping == {
        "LABEL_0": "chatglm-6b",
        "LABEL_1": "GPT3.5 Turbo",
        "LABEL_2": "Llama-2-7B",
    }
    assert s.strong is None
    assert s.weak is None
    assert set(s.models) == {"chatglm-6b", "GPT3.5 Turbo", "Llama-2-7B", "extra-a", "extra-b"}
    assert s.upstreams["default"].base_url == "http://127.0.0.1:11434/v1"


def test_file_with_env_substitution_and_env_override(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "upstreams:\n"
        "  openai: {base_url: 'https://api.openai.com/v1', api_key: '${MY_KEY}'}\n"
        "  local: {base_url: 'http://127.0.0.1:11434/v1'}\n"
        "models:\n"
        "  gpt-4o: {upstream: openai}\n"
        "  GPT3.5 Turbo: {upstream: openai, model: gpt-3.5-turbo}\n"
        "  llama3: {upstream: local, model: 'llama3.1:8b'}\n"
        "routing:\n"
        "  mapping: {LABEL_0: gpt-4o, LABEL_1: llama3, LABEL_2: llama3}\n"
        "  threshold: 0.6\n"
        "  fallback: llama3\n"
    )
    s = load_settings({"MY_KEY": "sk-file", "ROUTELLM_THRESHOLD": "0.7"}, str(path))
    assert s.threshold == 0.7  # the environment wins
    assert s.upstreams["openai"].api_key == "sk-file"
    assert s.upstreams["local"].api_key is None
    assert s.models["GPT3.5 Turbo"].upstream_model == "gpt-3.5-turbo"
    assert s.models["llama3"].upstream == "local"
    assert "default" not in s.upstreams
    env_file = load_settings({"MY_KEY": "k", "ROUTELLM_CONFIG": str(path)})
    assert env_file.fallback == "llama3"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"ROUTELLM_MAPPING": "{LABEL_0: gpt-4o}"}, "ROUTELLM_MAPPING is not valid JSON"),
        ({"ROUTELLM_MAPPING": "[1]"}, "ROUTELLM_MAPPING must be an object"),
        ({"ROUTELLM_MAPPING": '{"best": "gpt-4o"}'}, "not a classifier label"),
        ({"ROUTELLM_MAPPING": '{"LABEL_0": "gpt-4o"}'}, "ROUTELLM_FALLBACK_MODEL is not set"),
        (
            {"ROUTELLM_THRESHOLD": "1.5"},
            "ROUTELLM_THRESHOLD='1.5' must be a number between 0 and 1",
        ),
        ({"ROUTELLM_THRESHOLD": "high"}, "ROUTELLM_THRESHOLD"),
        ({"ROUTELLM_STRONG_MODEL": "gpt-4o"}, "ROUTELLM_WEAK_MODEL is not set"),
        ({"ROUTELLM_UPSTREAM_TIMEOUT": "-1"}, "ROUTELLM_UPSTREAM_TIMEOUT='-1' must be a positive"),
        ({"ROUTELLM_MAX_BODY_BYTES": "1.5"}, "ROUTELLM_MAX_BODY_BYTES"),
        ({"ROUTELLM_UPSTREAM_BASE_URL": "api.openai.com"}, "must be an http(s) URL"),
        ({"ROUTELLM_LOG_FORMAT": "xml"}, "ROUTELLM_LOG_FORMAT"),
        ({"ROUTELLM_SHUTDOWN_GRACE": "soon"}, "ROUTELLM_SHUTDOWN_GRACE='soon' must be a positive"),
        ({"ROUTELLM_BERT_DTYPE": "fp8"}, "ROUTELLM_BERT_DTYPE"),
    ],
)
def test_invalid_environment(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("yaml_text", "env", "fragment"),
    [
        ("models:\n  a: {upstream: nowhere}\n", {}, "unknown upstream 'nowhere'"),
        (
            "upstreams:\n  u: {base_url: 'http://x/v1', api_key: '${UNSET_VAR}'}\n",
            {},
            "${UNSET_VAR}",
        ),
        ("upstreams:\n  u: {api_key: k}\n", {}, "needs a base_url"),
        ("upstreams: [\n", {}, "invalid YAML"),
        ("colour: blue\n", {}, "unknown key 'colour'"),
        (
            "upstreams:\n  u: {base_url: 'http://x/v1'}\nmodels:\n  a: {upstream: u}\n",
            {"ROUTELLM_FALLBACK_MODEL": "zzz", "ROUTELLM_MAPPING": '{"LABEL_0": "a"}'},
            "ROUTELLM_FALLBACK_MODEL names 'zzz', which no upstream serves",
        ),
        (
            "upstreams:\n  u: {base_url: 'http://x/v1'}\nmodels:\n  a: {upstream: u}\n",
            {"ROUTELLM_MAPPING": '{"LABEL_0": "b"}', "ROUTELLM_FALLBACK_MODEL": "a"},
            "ROUTELLM_MAPPING names 'b'",
        ),
    ],
)
def test_invalid_file(tmp_path: Path, yaml_text: str, env: dict[str, str], fragment: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(SettingsError) as info:
        load_settings(env, str(path))
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file() -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings({"ROUTELLM_CONFIG": "/nonexistent/gateway.yaml"})


@pytest.mark.parametrize(
    "env",
    [
        {"ROUTELLM_MAPPING": "{oops"},
        {"ROUTELLM_THRESHOLD": "2"},
        {"ROUTELLM_CONFIG": "/nope.yaml"},
        {"ROUTELLM_BERT_MODEL": "/nonexistent/bert-dir"},
    ],
)
def test_cli_exits_with_one_line_and_no_traceback(env: dict[str, str]) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROUTELLM_")}
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--port", "0"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("routellm-gateway: ")
    assert "ROUTELLM_" in lines[0]  # names the variable to fix
    assert "Traceback" not in result.stderr


def test_calibrate_prints_the_quantile(tmp_path: Path, checkpoint_factory: object) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '{"prompt": "write a poem about the sea"}\n'
        '{"messages": [{"role": "user", "content": "prove the theorem"}]}\n'
        "plain line prompt\n\n"
    )
    checkpoint = checkpoint_factory(None)  # type: ignore[operator]
    env = {
        **os.environ,
        "ROUTELLM_BERT_MODEL": str(checkpoint),
        "ROUTELLM_BERT_CACHE_DIR": str(tmp_path / "onnx"),
    }
    env.pop("ROUTELLM_BERT_URL", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "calibrate",
            "--prompts",
            str(prompts),
            "--strong-share",
            "0.5",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    threshold = float(result.stdout.strip())
    assert 0.0 <= threshold <= 1.0
    assert "3 prompts" in result.stderr
