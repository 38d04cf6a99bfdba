"""ServiceSettings: the classifier service's own settings, apart from the classifier's."""

from __future__ import annotations

import pytest

from classifier.service_settings import ServiceSettings, from_environment
from classifier.settings import ClassifierSettings, SettingsError

SERVICE_ENV = {
    "ROUTELLM_CLASSIFIER_API_KEY": "sk-x",
    "ROUTELLM_CLASSIFIER_MAX_INPUTS": "4",
    "ROUTELLM_CLASSIFIER_MAX_BODY_BYTES": "2048",
    "ROUTELLM_LOG_FORMAT": "JSON",
}


def test_defaults() -> None:
    s = ServiceSettings.from_env({})
    assert s == ServiceSettings()
    assert (s.api_key, s.max_inputs, s.max_body_bytes, s.log_format) == (
        None,
        64,
        1024 * 1024,
        "text",
    )


def test_every_variable() -> None:
    s = ServiceSettings.from_env(SERVICE_ENV)
    assert s == ServiceSettings(
        api_key="sk-x", max_inputs=4, max_body_bytes=2048, log_format="json"
    )


def test_empty_values_are_unset() -> None:
    s = ServiceSettings.from_env({"ROUTELLM_CLASSIFIER_API_KEY": " ", "ROUTELLM_LOG_FORMAT": ""})
    assert (s.api_key, s.log_format) == (None, "text")


def test_the_classifier_settings_ignore_the_service_variables() -> None:
    """The gateway parses `ClassifierSettings` only: a bad service value cannot stop it."""
    bad = {"ROUTELLM_CLASSIFIER_MAX_INPUTS": "0", "ROUTELLM_LOG_FORMAT": "xml"}
    assert ClassifierSettings.from_env({**SERVICE_ENV, **bad}) == ClassifierSettings()


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        (
            {"ROUTELLM_CLASSIFIER_MAX_INPUTS": "0"},
            "ROUTELLM_CLASSIFIER_MAX_INPUTS='0' is not valid: use a whole number >= 1",
        ),
        (
            {"ROUTELLM_CLASSIFIER_MAX_BODY_BYTES": "lots"},
            "ROUTELLM_CLASSIFIER_MAX_BODY_BYTES='lots' is not valid: use a whole number >= 1024",
        ),
        (
            {"ROUTELLM_LOG_FORMAT": "xml"},
            "ROUTELLM_LOG_FORMAT='xml' is not supported: use text or json",
        ),
    ],
)
def test_invalid_values_raise_one_line(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as info:
        ServiceSettings.from_env(env)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_from_environment_reads_both(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SERVICE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ROUTELLM_BERT_MODEL", "/models/bert")
    settings, service = from_environment()
    assert settings.model == "/models/bert"
    assert service == ServiceSettings.from_env(SERVICE_ENV)


def test_settings_are_frozen() -> None:
    s = ServiceSettings()
    with pytest.raises(AttributeError):
        s.max_inputs = 1  # type: ignore[misc]
