"""The classifier HTTP service's own settings: its key, request limits and log format.

    settings, service = from_environment()           # what `uvicorn --factory` and the CLI use
    service = ServiceSettings.from_env(env)          # from any mapping (tests)

They live apart from `ClassifierSettings` because only the service uses them: the gateway, which
loads or calls a classifier too, never sees them. Like `classifier.settings`, this module reads the
environment and raises `SettingsError` with one line naming the variable and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from classifier.logs import LogFormat
from classifier.settings import ClassifierSettings, SettingsError, getter, int_setting


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """What the classifier service needs besides the classifier: who may call it and how much."""

    api_key: str | None = None
    """`ROUTELLM_CLASSIFIER_API_KEY`: when set, the service requires `Authorization: Bearer`."""
    max_inputs: int = 64
    """`ROUTELLM_CLASSIFIER_MAX_INPUTS`: most texts the service accepts in one request."""
    max_body_bytes: int = 1024 * 1024
    """`ROUTELLM_CLASSIFIER_MAX_BODY_BYTES`: largest request body the service reads (413 above)."""
    log_format: LogFormat = "text"
    """`ROUTELLM_LOG_FORMAT`: the service's log lines for people (text) or shippers (json)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServiceSettings:
        """Parse settings from `env` (the CLI passes `os.environ`). Empty values count as unset."""
        get = getter(env)
        log_format = (get("ROUTELLM_LOG_FORMAT") or "text").lower()
        if log_format not in ("text", "json"):
            raise SettingsError(
                f"ROUTELLM_LOG_FORMAT={log_format!r} is not supported: use text or json"
            )
        return cls(
            api_key=get("ROUTELLM_CLASSIFIER_API_KEY"),
            max_inputs=int_setting(get, "ROUTELLM_CLASSIFIER_MAX_INPUTS", 64, minimum=1),
            max_body_bytes=int_setting(
                get, "ROUTELLM_CLASSIFIER_MAX_BODY_BYTES", 1024 * 1024, minimum=1024
            ),
            log_format=log_format,  # type: ignore[arg-type]  # checked just above
        )


def from_environment() -> tuple[ClassifierSettings, ServiceSettings]:
    """Both settings of the classifier service, from this process's environment."""
    return ClassifierSettings.from_env(os.environ), ServiceSettings.from_env(os.environ)
