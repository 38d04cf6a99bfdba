"""A router's candidate on live traffic, through the real app: shadow mode records the
candidate's choice beside every decision without changing the answer; canary mode gives a share
of conversations to the candidate, by conversation id, and a conversation never changes arm.
Then `/v1/routers/compare` on scripted verdicts, against figures worked out by hand."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import sync_playwright

from classifier.settings import SettingsError
from gateway.app import create_app
from gateway.ledger.writer import DecisionRow, VerdictRow
from gateway.routing.decider import in_share
from gateway.settings.load import load_settings
from tests.gateway.browser import ARGS, CHROMIUM, PROXY_VARIABLES, keep_screenshot, pct
from tests.gateway.fake_upstream import FakeUpstream
from tests.gateway.rows import row
from tests.servers import serve

RULE = {"strong": "strong", "weak": "weak", "threshold": 0.5}


def config(tmp_path: Path, url: str, candidate: dict[str, Any], own: Path) -> str:
    doc = {
        "upstreams": {"fake": {"base_url": f"{url}/v1"}},
        "models": {"strong": {"upstream": "fake", "model": "ok:strong"},
                   "weak": {"upstream": "fake", "model": "ok:weak"}},
        "routing": {**RULE, "candidate": candidate},
        "routers": {"challenger": {**RULE, "classifier": str(own)}},
    }  # fmt: skip
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def rows_of(url: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        rows: list[dict[str, Any]] = httpx.get(
            f"{url}/v1/decisions", params={"limit": 1000}
        ).json()["data"]
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline
        time.sleep(0.05)


def chat(url: str, text: str, conversation: str | None = None) -> httpx.Response:
    headers = {"x-routellm-conversation": conversation} if conversation else {}
    body = {"model": "router", "messages": [{"role": "user", "content": text}]}
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200
    return answer


@pytest.fixture
def gateway_with(
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
    checkpoint_factory: Callable[[int | None], Path],
) -> Callable[[dict[str, Any]], Any]:
    """The incumbent (`router`) on a checkpoint whose weak model wins, the candidate
    (`challenger`) on one whose strong model wins: every disagreement is visible."""

    def make(candidate: dict[str, Any]) -> Any:
        path = config(tmp_path, upstream[1], candidate, checkpoint_factory(0))
        env = {
            "ROUTELLM_BERT_MODEL": str(checkpoint_factory(2)),
            "ROUTELLM_LEDGER": str(tmp_path / "ledger.db"),
            "ROUTELLM_CONVERSATION_POLICY": "per_turn",
        }
        return create_app(load_settings(env, path))

    return make


def test_shadow_mode_records_both_decisions_and_leaves_the_answer(
    gateway_with: Callable[[dict[str, Any]], Any],
) -> None:
    with serve(gateway_with({"router": "challenger", "mode": "shadow"})) as url:
        answers = [chat(url, f"question {i}") for i in range(4)]
        rows = rows_of(url, 4)
    assert [a.headers["x-routellm-model"] for a in answers] == ["weak"] * 4
    assert [a.json()["model"] for a in answers] == ["ok:weak"] * 4
    for r in rows:
        assert (r["router"], r["model"], r["candidate_model"]) == ("router", "weak", "strong")
        assert r["candidate_score"] > 0.9  # the challenger's P(LABEL_0)
        assert r["score"] < 0.1


def test_canary_shares_conversations_by_id_and_never_switches_one(
    gateway_with: Callable[[dict[str, Any]], Any],
) -> None:
    share = 0.3
    with serve(gateway_with({"router": "challenger", "mode": "canary", "share": share})) as url:
        conversations = [f"conv-{i}" for i in range(40)]
        for turn in range(2):
            for conversation in conversations:
                chat(url, f"turn {turn} of {conversation}", conversation)
        rows = rows_of(url, 80)
    arms: dict[str, set[str]] = {}
    for r in rows:
        arms.setdefault(r["conversation"], set()).add(r["router"])
        assert r["model"] == ("strong" if r["router"] == "challenger" else "weak")
    assert all(len(arm) == 1 for arm in arms.values())  # no conversation changed arm
    canary = sum(arm == {"challenger"} for arm in arms.values())
    assert canary == sum(in_share(c, share) for c in conversations)
    # The hash spreads ids evenly: over many ids the share is S within sampling error.
    n = 20_000
    drawn = sum(in_share(f"conversation-{i}", share) for i in range(n))
    sigma = (n * share * (1 - share)) ** 0.5
    assert abs(drawn - n * share) < 4 * sigma


def test_a_candidate_must_be_another_router(tmp_path: Path) -> None:
    own = tmp_path / "x"
    with pytest.raises(SettingsError, match=r"the candidate of 'router' is 'nobody'"):
        load_settings({}, config(tmp_path, "http://127.0.0.1:9", {"router": "nobody"}, own))
    bad = config(tmp_path, "http://127.0.0.1:9", {"router": "challenger", "mode": "blue"}, own)
    with pytest.raises(SettingsError, match=r"mode 'blue': use shadow or canary"):
        load_settings({}, bad)


def verdict(request_id: str, picked: str, judged: str) -> VerdictRow:
    return VerdictRow(
        request_id, time.time(), "strong", "weak", "judge", picked, judged, 0.5, 0.5, True, 0.001
    )  # type: ignore[arg-type]


def scripted(app: Any) -> tuple[list[DecisionRow], list[DecisionRow]]:
    """Rows and verdicts whose figures are worked out by hand below, written to the ledger.

    Incumbent arm: 4 requests, 1 strong; judged: the strong one (kept), two weak ones of which
    the judge gave one to the strong model (lost) and one a tie (kept): 2 of 3 kept. Its
    shadow: the candidate chose strong on the three weak requests (disagreements); judged: one
    strong win (the candidate was right), one tie (the incumbent was). Candidate arm: 2
    requests, both strong, one judged a strong win (kept)."""
    ledger = app.state.ledger
    incumbent = [
        row("strong", 0.9, router="router", candidate_model="strong"),
        row("weak", 0.2, router="router", candidate_model="strong"),
        row("weak", 0.3, router="router", candidate_model="strong"),
        row("weak", 0.1, router="router", candidate_model="strong", total_ms=130.0),
    ]
    challenger = [row("strong", 0.8, router="challenger"), row("strong", 0.7, router="challenger")]
    for r in (*incumbent, *challenger):
        ledger.record(r)
    for r, picked, judged in (
        (incumbent[0], "strong", "strong"),
        (incumbent[1], "weak", "strong"),
        (incumbent[2], "weak", "tie"),
        (challenger[0], "strong", "strong"),
    ):
        ledger.record(verdict(r.id, picked, judged))
    deadline = time.monotonic() + 10
    while ledger.stats().written < 10:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return incumbent, challenger


def test_the_compare_report_against_scripted_verdicts(
    gateway_with: Callable[[dict[str, Any]], Any],
) -> None:
    app = gateway_with({"router": "challenger", "mode": "canary", "share": 0.5})
    with serve(app) as url:
        incumbent, _ = scripted(app)
        report = httpx.get(
            f"{url}/v1/routers/compare", params={"incumbent": "router", "candidate": "challenger"}
        ).json()
        refused = httpx.get(f"{url}/v1/routers/compare", params={"incumbent": "nope"})
    a, b, shadow = report["incumbent"], report["candidate"], report["shadow"]
    assert (a["requests"], a["strong_share"], a["judged"]) == (4, 0.25, 3)
    assert a["quality_kept"] == pytest.approx(2 / 3)
    assert (b["requests"], b["strong_share"], b["judged"], b["quality_kept"]) == (2, 1.0, 1, 1.0)
    costs = [r.cost_usd or 0.0 for r in incumbent]
    assert a["cost_usd"] == pytest.approx(sum(costs))
    assert a["saved_usd"] == pytest.approx(
        sum(r.baseline_cost_usd or 0 for r in incumbent) - sum(costs)
    )
    assert a["total_ms_p50"] == 90.0
    assert (shadow["requests"], shadow["disagreements"], shadow["judged_disagreements"]) == (
        4,
        3,
        2,
    )
    assert shadow["disagreement_rate"] == 0.75
    assert shadow["verdicts"] == {"strong": 1, "tie": 1, "weak": 0}
    assert (shadow["candidate_right"], shadow["incumbent_right"]) == (1, 1)
    lo, hi = shadow["candidate_right_interval"]
    assert lo < 0.5 < hi
    assert report["separated"] is False
    assert "do not yet separate" in report["summary"]
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "incumbent"


def test_the_dashboard_compares_the_candidate_in_a_real_browser(
    gateway_with: Callable[[dict[str, Any]], Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in PROXY_VARIABLES:  # Chromium and httpx talk to 127.0.0.1 only
        monkeypatch.delenv(var, raising=False)
    app = gateway_with({"router": "challenger", "mode": "canary", "share": 0.5})
    with serve(app) as url:
        scripted(app)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1800})
            page.goto(f"{url}/ui")
            page.click("#load")
            page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('Updated')"
            )
            assert page.is_visible("#compare-panel")
            assert page.text_content("#compare-title") == "challenger beside router (canary)"
            assert "do not yet separate" in page.inner_text("#compare-summary")
            table = page.locator("#compare tbody tr").all_inner_texts()
            assert "requests\t4\t2" in table
            assert f"strong share\t{pct(0.25)}\t{pct(1.0)}" in table
            assert f"quality kept\t{pct(2 / 3)}\t{pct(1.0)}" in table
            shadow = page.inner_text("#compare-shadow")
            assert "disagreed on 75.0%" in shadow
            assert "bore out the candidate on 1" in shadow
            page.locator("#compare-panel").scroll_into_view_if_needed()
            shot = tmp_path / "compare.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    keep_screenshot(shot, "dashboard-compare.png")
