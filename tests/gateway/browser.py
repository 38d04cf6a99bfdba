"""Shared by the dashboard's browser tests: Debian's Chromium as the probe of this machine starts
it (no background networking, no sandbox as root), the figures as the page formats them, and
the screenshot kept as a test artifact."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


def usd(x: float) -> str:
    return f"${x:.4f}"


def pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def keep_screenshot(shot: Path, name: str) -> None:
    """Check the screenshot has content; copy it to `$ROUTELLM_ARTIFACTS` when that is set."""
    assert shot.stat().st_size > 10_000
    artifacts = os.environ.get("ROUTELLM_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / name)
