"""The generated reference pages, by their path in the documentation site."""

from __future__ import annotations

from collections.abc import Callable

from gateway.reference import commands, config_keys, http_api, metrics, variables

PAGES: dict[str, Callable[[], str]] = {
    "reference/environment.md": variables.page,
    "reference/configuration.md": config_keys.page,
    "reference/cli.md": commands.page,
    "reference/http.md": http_api.page,
    "reference/metrics.md": metrics.page,
}
"""Each generated page's path under `docs/` and the function that writes it."""


def pages() -> dict[str, str]:
    """Every generated page's Markdown, by its path under `docs/`."""
    return {path: write() for path, write in PAGES.items()}
