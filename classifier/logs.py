"""Logging for a whole process, the gateway's or the classifier service's: one format for our
lines, uvicorn's and every library's.

    configure_logging(settings.log_format)                      # once, in a CLI, before serving
    uvicorn.run(app, log_config=logging_config(settings.log_format), ...)  # uvicorn's lines too

`json` writes every line as one JSON object, `{"ts", "level", "logger", "message", ...}` with `ts`
in ISO 8601 UTC, so a log shipper (Loki, Fluent Bit, Datadog) parses it as it is. A request line
carries its fields at the top level (`request_id` among them when the caller passes one); an
access line carries `client`, `method`, `path`, `http_version` and `status`. `text` writes lines
for people. Neither ever carries a query string: clients put keys there (`?key=`, `?api-key=`).
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

RESERVED = ("ts", "level", "logger", "message")
"""Keys every JSON line has; a request field of the same name is written as `field_<name>`."""


def logging_config(fmt: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` dict: the root logger and uvicorn's loggers on stderr, all
    through the formatter of `fmt`. uvicorn takes it as `log_config=`."""
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's own config gives these handlers of their own; here they go to the root's.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": level, "propagate": True},
            # One line per request is ours to write; httpx would add one per upstream call.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


def configure_logging(fmt: LogFormat, level: str = "INFO") -> None:
    """Send every log line of this process through the formatter of `fmt`, warnings included."""
    logging.config.dictConfig(logging_config(fmt, level))
    logging.captureWarnings(True)  # `warnings` would otherwise print multi-line text to stderr
    # Progress bars (transformers' "Loading weights") are not log lines: they would break both
    # formats. transformers reads this switch when it is first imported, which is later.
    from huggingface_hub.utils.tqdm import disable_progress_bars

    disable_progress_bars()
    adopt_library_logs()


def adopt_library_logs() -> None:
    """Once `configure_logging` has run, make huggingface_hub's and transformers' lines print
    once, in this process's format. Idempotent; a no-op in a process that never configured it.

    Each library gives its root logger a bare stderr handler of its own: huggingface_hub when
    imported, and it also propagates, so each of its warnings printed twice (bare, then ours);
    transformers on its first log call, and it does not propagate, so its lines came out bare.
    transformers is imported lazily, after `configure_logging`: whatever imports it for a
    model (`classifier.loading`) calls this again."""
    if not any(
        isinstance(h.formatter, JsonFormatter | TextFormatter) for h in logging.getLogger().handlers
    ):
        return
    hub = logging.getLogger("huggingface_hub")
    for handler in hub.handlers[:]:
        hub.removeHandler(handler)
    hub.propagate = True
    if "transformers.utils.logging" in sys.modules:  # never import transformers for this
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_default_handler()
        transformers_logging.enable_propagation()


def quote(value: Any) -> str:
    """A value for a `text` line: as it is when plain, JSON-quoted when it has a space, a quote,
    an `=` or a control character."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if not isinstance(value, str):
        return str(value)
    quoted = json.dumps(value)  # escapes CR, LF and every other control character
    return quoted if quoted[1:-1] != value or any(c in value for c in ' "=') else value


def access_fields(record: logging.LogRecord) -> dict[str, Any] | None:
    """The fields of a uvicorn access line, the query string dropped; None for any other line.
    uvicorn logs them as `args = (client, method, path_with_query, http_version, status)`."""
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return None
    client, method, full_path, http_version, status = args
    return {
        "client": str(client),
        "method": str(method),
        "path": str(full_path).split("?", 1)[0],
        "http_version": str(http_version),
        "status": status,
    }


class JsonFormatter(logging.Formatter):
    """Each record as one JSON object on one line (see the module docstring for its keys)."""

    def format(self, record: logging.LogRecord) -> str:
        access = access_fields(record)
        fields: dict[str, Any] = getattr(record, "fields", None) or access or {}
        if access is not None:
            message = f"{access['method']} {access['path']} {access['status']}"
        else:
            message = record.getMessage()
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for key, value in fields.items():
            line[f"field_{key}" if key in RESERVED else key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """`<local time> LEVEL logger message`, for people; access lines without their query."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        access = access_fields(record)
        if access is not None:
            record.message = (
                f'{access["client"]} "{access["method"]} {quote(access["path"])} '
                f'HTTP/{access["http_version"]}" {access["status"]}'
            )
        return super().formatMessage(record)
