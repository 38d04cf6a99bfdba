"""The dashboard's quality panels in real headless Chromium: the reliability diagram's points,
the quality kept with its interval, the shadow spend and the feedback table match
`/v1/dashboard`, which the ledger rows below fix."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from classifier.local import LocalClassifier
from gateway.app import create_app
from gateway.ledger.quality import Verdict
from gateway.ledger.writer import FeedbackRow, VerdictRow
from gateway.settings.load import Settings
from tests.gateway.browser import ARGS, CHROMIUM, PROXY_VARIABLES, keep_screenshot, pct, usd
from tests.gateway.rows import PRICES_ENV, row
from tests.servers import serve


def verdict(request_id: str, win_rate: float, judged: Verdict) -> VerdictRow:
    return VerdictRow(
        request_id=request_id,
        created=time.time(),
        strong="strong",
        weak="weak",
        judge="judge",
        picked="strong" if win_rate >= 0.5 else "weak",
        verdict=judged,
        win_rate=win_rate,
        threshold=0.5,
        strong_first=True,
        cost_usd=0.0025,
    )


def test_quality_panels_show_the_ledger(
    tmp_path: Path, make_settings: Callable[..., Settings], classifiers: dict[int, LocalClassifier]
) -> None:
    settings = make_settings(ROUTELLM_PRICES=PRICES_ENV, ROUTELLM_ADMIN_KEYS="boss")
    app = create_app(settings, classifier=classifiers[2])
    script: list[tuple[float, Verdict]] = [
        (0.12, "strong"),
        (0.15, "tie"),
        (0.35, "weak"),
        (0.62, "strong"),
        (0.91, "strong"),
    ]
    decisions = [row("strong" if p >= 0.5 else "weak", p) for p, _ in script]
    with serve(app) as url:
        ledger = app.state.ledger
        for decision in decisions:
            ledger.record(decision)
        for decision, (p, judged) in zip(decisions, script, strict=True):
            ledger.record(verdict(decision.id, p, judged))
        deadline = time.monotonic() + 10
        while ledger.stats().written < 2 * len(decisions):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        stored = asyncio.run(
            ledger.add_feedback(FeedbackRow(decisions[0].id, time.time(), -1.0, -1.0, "signed"))
        )
        assert stored
        auth = {"authorization": "Bearer boss"}
        quality = httpx.get(f"{url}/v1/dashboard", headers=auth).json()["quality"]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(f"{url}/ui")
            page.fill("#key", "boss")
            page.click("#load")
            page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('Updated')"
            )
            kept = quality["kept"]
            assert kept["kept"] == 4 / 5  # only the p=0.12 request lost the strong answer
            assert page.inner_text("#kept") == pct(kept["kept"])
            low, high = kept["interval"]
            assert page.inner_text("#kept-interval") == f"{pct(low)} – {pct(high)}"
            assert page.inner_text("#judged") == "5"
            assert page.inner_text("#shadow-spend") == f"{usd(5 * 0.0025)} (cap {usd(0)} a day)"
            assert page.inner_text("#shadow-failed") == "0 of 5"
            assert page.inner_text("#shadow-share") == f"configured {pct(0.0)}"  # shadowing off
            # Buckets 0.1, 0.3, 0.6 and 0.9 hold judged requests: one point each.
            assert page.locator("#reliability circle.judged").count() == 4
            titles = page.locator("#reliability circle.judged title").all_text_contents()
            assert "0.1–0.2: 2 judged, strong won 1, tie 1, weak won 0" in titles[0]
            feedback = page.locator("#feedback tbody tr").all_inner_texts()
            assert "weak\t3\t1\t33.3%\t-1.00" in feedback
            assert "strong\t2\t0\t0.0%\t–" in feedback
            page.locator("#reliability").scroll_into_view_if_needed()
            shot = tmp_path / "quality.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    keep_screenshot(shot, "dashboard-quality.png")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chromium and httpx talk to 127.0.0.1 only: no proxy from the environment."""
    for var in PROXY_VARIABLES:
        monkeypatch.delenv(var, raising=False)
