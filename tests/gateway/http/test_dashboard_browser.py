"""The dashboard in real headless Chromium (Debian's), driven by Playwright: the figures shown
match the ledger, and the threshold slider's what-if changes as the ledger says it should."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from classifier.local import LocalClassifier
from gateway.app import create_app
from gateway.settings.load import Settings
from tests.gateway.browser import ARGS, CHROMIUM, PROXY_VARIABLES, keep_screenshot, pct, usd
from tests.gateway.rows import PRICES_ENV, known_mix, row
from tests.servers import serve


def set_slider(page: Page, value: float) -> None:
    page.eval_on_selector(
        "#slider",
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }",
        f"{value:.2f}",
    )


def test_dashboard_shows_the_ledger_and_the_what_if_follows_the_slider(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    classifiers: dict[int, LocalClassifier],
) -> None:
    settings = make_settings(
        ROUTELLM_PRICES=PRICES_ENV, ROUTELLM_API_KEYS="client", ROUTELLM_ADMIN_KEYS="boss"
    )
    app = create_app(settings, classifier=classifiers[2])
    now = time.time()
    # A day of traffic: the mix now, and older weak-heavy hours so the share chart has a shape.
    rows = known_mix() + [
        row("weak" if i % 3 else "strong", 0.15 + (i % 7) / 10, created=now - 3600 * (1 + i % 20))
        for i in range(40)
    ]
    with serve(app) as url:
        # Real requests through the gateway and the fake upstream, beside the recorded history.
        for stream in (False, True, False, True):
            body = {"model": "router", "messages": [{"role": "user", "content": "hi"}]}
            answer = httpx.post(
                f"{url}/v1/chat/completions",
                json={**body, "stream": stream},
                headers={"authorization": "Bearer client"},
            )
            assert answer.status_code == 200
        for r in rows:
            app.state.ledger.record(r)
        deadline = time.monotonic() + 10
        while app.state.ledger.stats().written < len(rows) + 4:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        auth = {"authorization": "Bearer boss"}
        savings = httpx.get(f"{url}/v1/savings?since=24h", headers=auth).json()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{url}/ui")
            # Without the key the page loads and says what is missing.
            page.wait_for_function("document.getElementById('status').className === 'error'")
            assert "admin key" in page.inner_text("#status").lower()
            page.fill("#key", "boss")
            page.click("#load")
            page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('Updated')"
            )
            assert page.inner_text("#requests") == str(savings["requests"]) == str(len(rows) + 4)
            assert page.inner_text("#cost") == usd(savings["cost_usd"])
            assert page.inner_text("#baseline") == usd(savings["baseline_cost_usd"])
            assert page.inner_text("#saved") == usd(savings["saved_usd"])
            assert page.inner_text("#saved-share") == pct(savings["saved_share"])
            assert page.inner_text("#unpriced") == str(savings["unpriced_requests"])
            assert page.inner_text("#threshold") == "0.50"
            assert page.locator("#threshold-mark").count() == 1
            assert page.locator("#series rect").count() > 10
            assert page.inner_text("#errors") == "1"

            for threshold in (0.25, 0.8):
                expected = httpx.get(
                    f"{url}/v1/whatif",
                    params={"threshold": threshold, "since": "24h"},
                    headers=auth,
                ).json()
                set_slider(page, threshold)
                page.wait_for_function(
                    f"document.getElementById('whatif-threshold').textContent === '{threshold:.2f}'"
                )
                assert page.inner_text("#whatif-strong-share") == pct(expected["strong_share"])
                assert page.inner_text("#whatif-cost") == usd(expected["cost_usd"])
                assert page.inner_text("#whatif-saved") == (
                    f"{usd(expected['saved_usd'])} ({pct(expected['saved_share'])})"
                )
                assert page.locator("#whatif-mark").count() == 1
            low, high = (
                httpx.get(f"{url}/v1/whatif", params={"threshold": t}, headers=auth).json()
                for t in (0.25, 0.8)
            )
            assert low["strong_share"] > high["strong_share"]
            assert low["cost_usd"] > high["cost_usd"]

            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    keep_screenshot(shot, "dashboard.png")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chromium and httpx talk to 127.0.0.1 only: no proxy from the environment."""
    for var in PROXY_VARIABLES:
        monkeypatch.delenv(var, raising=False)
