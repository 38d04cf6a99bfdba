"""`routellm-classifier`: run the classifier HTTP service under uvicorn.

    routellm-classifier [--host 127.0.0.1] [--port 8800] [--model ID_OR_DIR]

Settings come from the environment (see `classifier.settings` and
`classifier.service_settings`); `--model` overrides
`ROUTELLM_BERT_MODEL`. An invalid setting prints one line to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routellm-classifier",
        description="Serve the RouteLLM BERT classifier over HTTP (/predict, /classify, /health).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    parser.add_argument("--port", type=int, default=8800, help="port (default: 8800)")
    parser.add_argument("--model", help="hub id or local directory (default: $ROUTELLM_BERT_MODEL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and settings, then serve until interrupted. Returns the exit status."""
    args = _parser().parse_args(argv)
    from classifier.service_settings import from_environment
    from classifier.settings import SettingsError

    try:
        settings, service = from_environment()
    except SettingsError as exc:
        print(f"routellm-classifier: {exc}", file=sys.stderr)
        return 2
    if args.model:
        settings = dataclasses.replace(settings, model=args.model)

    import uvicorn

    from classifier.logs import configure_logging, logging_config
    from classifier.service import create_app

    # One log format for the whole distribution: the service shares the gateway's formatters.
    configure_logging(service.log_format)
    uvicorn.run(
        create_app(settings, service),
        log_config=logging_config(service.log_format),
        host=args.host,
        port=args.port,
        loop="uvloop" if sys.platform != "win32" else "auto",
        http="httptools",
        ws="none",
        log_level="info",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
