"""The gateway's line per request, in the process's log format (`classifier.logs`).

log_request(settings.log_format, {"event": "chat", "model": ..., "status": 200})
"""

from __future__ import annotations

import logging
from typing import Any

from classifier.logs import quote

log = logging.getLogger("routellm.gateway")


def log_request(fmt: str, fields: dict[str, Any]) -> None:
    """One line per request. Callers pass decisions, ids and timings only, never keys or message
    content. With `json` the fields become top-level keys of the line; with `text` they are
    `key=value` pairs, values quoted when needed so CR/LF from a client cannot forge a line."""
    if fmt == "json":
        log.info(str(fields.get("event", "request")), extra={"fields": fields})
        return
    log.info(" ".join(f"{key}={quote(value)}" for key, value in fields.items()))
