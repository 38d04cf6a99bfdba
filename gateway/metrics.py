"""The per-request log line."""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("routellm.gateway")


def log_request(fmt: str, fields: dict[str, Any]) -> None:
    """One line per request. Values are JSON-escaped, so CR/LF from a client cannot forge a line;
    callers pass decisions and timings only, never keys or message content."""
    if fmt == "json":
        log.info(json.dumps(fields, separators=(",", ":")))
        return
    log.info(" ".join(f"{key}={_text(value)}" for key, value in fields.items()))


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if not isinstance(value, str):
        return str(value)
    quoted = json.dumps(value)  # escapes CR, LF and every other control character
    return quoted if quoted[1:-1] != value or any(c in value for c in ' "=') else value
