"""Screenshots of three pages of the built site as a reader sees them, in the headless Chromium
the tests use: `make docs && .venv/bin/python -m docs.screenshots.take`. The site is served on
127.0.0.1 from site/ for the length of the run; the PNGs are written beside this script."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.gateway.browser import ARGS, CHROMIUM

HERE = Path(__file__).resolve().parent
SITE = HERE.parents[1] / "site"
PAGES = {
    "start.png": "index.html",
    "configuration-reference.png": "reference/configuration.html",
    "benchmark-comparison.png": "benchmarks/comparison.html",
}


def main() -> None:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            for name, path in PAGES.items():
                page.goto(f"{base}/{path}", wait_until="networkidle")
                page.screenshot(path=str(HERE / name))
                print(f"{name}: {base}/{path}")
            browser.close()
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
