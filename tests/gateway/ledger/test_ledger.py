"""The decision ledger on a real SQLite file: figures, privacy, retention, and a store that
cannot be written (records still return at once, losses are counted, writes resume)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml

from gateway.ledger import reports
from gateway.ledger.reports import parse_since
from gateway.ledger.writer import Ledger
from gateway.settings.load import Settings, load_settings
from tests.gateway.rows import PRICES_ENV, known_mix, row

WAIT = 10.0


async def written(ledger: Ledger, count: int) -> None:
    """Wait until the writer has written `count` rows (bounded: fails after WAIT seconds)."""
    deadline = time.monotonic() + WAIT
    while ledger.stats().written < count:
        assert time.monotonic() < deadline, ledger.stats()
        await asyncio.sleep(0.02)


@pytest.fixture
def settings(tmp_path: Path, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(ROUTELLM_LEDGER=str(tmp_path / "ledger.db"), ROUTELLM_PRICES=PRICES_ENV)


@pytest.fixture
async def ledger(settings: Settings) -> AsyncIterator[Ledger]:
    opened = Ledger.open(settings)
    yield opened
    await opened.aclose()


async def test_savings_and_decisions_give_exact_figures(ledger: Ledger) -> None:
    rows = known_mix()
    for r in rows:
        ledger.record(r)
    await written(ledger, len(rows))

    report = await reports.savings(ledger)
    assert report["requests"] == 7
    assert report["cost_usd"] == pytest.approx(2 * 0.0045 + 3 * 0.00027)
    assert report["baseline_cost_usd"] == pytest.approx(5 * 0.0045)
    assert report["saved_usd"] == pytest.approx(0.0225 - 0.00981)
    assert report["saved_share"] == pytest.approx((0.0225 - 0.00981) / 0.0225)
    assert report["unpriced_requests"] == 1  # the direct answer; the failed one cost nothing
    assert report["by_model"]["strong"] == {"requests": 3, "share": 3 / 7, "cost_usd": 0.009}
    assert report["by_model"]["weak"]["cost_usd"] == pytest.approx(4 * 0.00027)

    listed = await reports.recent_decisions(ledger, limit=3)
    assert [r.id for r in listed] == [r.id for r in sorted(rows, key=lambda r: r.created)][::-1][:3]
    assert listed[0] == sorted(rows, key=lambda r: r.created)[-1]


async def test_what_if_re_decides_rule_rows_and_prices_their_tokens(ledger: Ledger) -> None:
    for r in known_mix():
        ledger.record(r)
    await written(ledger, 7)
    at_current = await reports.what_if(ledger, 0.5)
    assert at_current["strong_share"] == 0.5  # 0.9, 0.7 and the failed 0.8 of six rule rows
    assert at_current["cost_usd"] == pytest.approx((await reports.savings(ledger))["cost_usd"])
    lower = await reports.what_if(ledger, 0.3)
    assert lower["strong_share"] == pytest.approx(4 / 6)
    assert lower["cost_usd"] == pytest.approx(3 * 0.0045 + 2 * 0.00027)
    everything_weak = await reports.what_if(ledger, 0.95)
    assert everything_weak["strong_share"] == 0
    assert everything_weak["cost_usd"] == pytest.approx(5 * 0.00027)
    assert everything_weak["baseline_cost_usd"] == pytest.approx(5 * 0.0045)


async def test_other_routers_keep_their_decisions_in_every_threshold_report(
    ledger: Ledger,
) -> None:
    mix = known_mix()
    # RouteLLM's MF router and a named router: win rates on scales of their own
    others = [row("strong", 0.99, router="router-mf") for _ in range(3)]
    others.append(row("weak", 0.2, router="tuned"))
    for r in [*mix, *others]:
        ledger.record(r)
    await written(ledger, len(mix) + len(others))

    # the same re-decisions as the default router's rows alone; the others keep their cost
    lower = await reports.what_if(ledger, 0.3)
    assert lower["routed_requests"] == 6
    assert lower["strong_share"] == pytest.approx(4 / 6)
    assert lower["cost_usd"] == pytest.approx(3 * 0.0045 + 2 * 0.00027 + 3 * 0.0045 + 0.00027)
    mf = await reports.what_if(ledger, 0.995, router="router-mf")
    assert (mf["routed_requests"], mf["strong_share"]) == (3, 0)
    assert sorted(await reports.win_rates(ledger)) == sorted(
        r.win_rate for r in mix if r.win_rate is not None
    )
    assert await reports.win_rates(ledger, router="tuned") == [0.2]
    dashboard = await reports.dashboard(ledger)
    assert sum(dashboard["histogram"]["counts"]) == 6
    assert dashboard["what_if"]["routed_requests"] == 6


async def test_a_named_routers_what_if_prices_its_own_strong_and_weak(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "upstreams": {"u": {"base_url": "http://127.0.0.1:9/v1"}},
                "models": {name: {"upstream": "u"} for name in ("strong", "middle", "weak")},
                "routing": {"strong": "strong", "weak": "weak"},
                "routers": {"tuned": {"strong": "middle", "weak": "weak"}},
            }
        )
    )
    prices = '{"strong": {"input": 2.5, "output": 10}, "middle": {"input": 1, "output": 4},'
    prices += ' "weak": {"input": 0.15, "output": 0.6}}'
    env = {"ROUTELLM_LEDGER": str(tmp_path / "l.db"), "ROUTELLM_PRICES": prices}
    ledger = Ledger.open(load_settings(env, str(config)))
    try:
        ledger.record(row("middle", 0.8, router="tuned"))
        await written(ledger, 1)
        tuned = await reports.what_if(ledger, 0.5, router="tuned")
        assert tuned["strong_share"] == 1
        assert tuned["cost_usd"] == pytest.approx((1000 * 1 + 200 * 4) / 1e6)  # middle's price
        assert (await reports.what_if(ledger, 0.5))["routed_requests"] == 0
    finally:
        await ledger.aclose()


async def test_since_filters_and_parses_every_documented_form(ledger: Ledger) -> None:
    now = time.time()
    old, new = row("weak", 0.2, created=now - 7200), row("strong", 0.9, created=now - 60)
    ledger.record(old)
    ledger.record(new)
    await written(ledger, 2)
    recent = await reports.recent_decisions(ledger, 10, parse_since("1h"))
    assert [r.id for r in recent] == [new.id]
    assert (await reports.savings(ledger, parse_since("3h")))["requests"] == 2
    assert parse_since("1767225600") == 1767225600.0
    assert parse_since("2026-01-01T00:00:00Z") == 1767225600.0
    assert parse_since("30m", now=1000.0) == -800.0
    for bad in ("yesterday", "2026-01-01T00:00:00", "nan"):
        with pytest.raises(ValueError, match="since="):
            parse_since(bad)


async def test_prompts_are_never_stored_unless_asked(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    for flag, expected in (("0", None), ("1", "explain monads")):
        settings = make_settings(
            ROUTELLM_LEDGER=str(tmp_path / f"p{flag}.db"), ROUTELLM_LEDGER_PROMPTS=flag
        )
        ledger = Ledger.open(settings)
        ledger.record(row("weak", 0.1, prompt="explain monads"))
        await ledger.aclose()
        with sqlite3.connect(tmp_path / f"p{flag}.db") as db:
            assert db.execute("SELECT prompt FROM routellm_decisions").fetchall() == [(expected,)]


async def test_retention_deletes_rows_older_than_the_setting(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        ROUTELLM_LEDGER=str(tmp_path / "r.db"), ROUTELLM_LEDGER_RETENTION_DAYS="1"
    )
    first = Ledger.open(settings)
    stale, fresh = row("weak", 0.1, created=time.time() - 2 * 86400), row("weak", 0.2)
    first.record(stale)
    first.record(fresh)
    await first.aclose()
    second = Ledger.open(settings)  # retention runs when the writer starts
    second.record(row("strong", 0.9))
    await written(second, 1)
    kept = {r.id for r in await reports.recent_decisions(second, 10)}
    await second.aclose()
    assert fresh.id in kept
    assert stale.id not in kept


async def test_unwritable_path_counts_losses_and_record_returns_at_once(
    tmp_path: Path, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings = make_settings(ROUTELLM_LEDGER=str(blocker / "ledger.db"))
    ledger = Ledger.open(settings, buffer_rows=5)
    for _ in range(50):
        ledger.record(row("weak", 0.1))
    deadline = time.monotonic() + WAIT
    while ledger.stats().failures < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    stats = ledger.stats()
    assert stats.written == 0
    assert stats.dropped + stats.buffered == 50
    # The queue's bound, plus the batch being retried (taken from that queue: at most as many).
    assert stats.buffered <= 5 + 5
    failures = [r for r in caplog.records if "ledger: cannot write" in r.getMessage()]
    assert len(failures) == 1  # logged once, however many attempts failed
    with pytest.raises(OSError, match="a-file"):
        await reports.savings(ledger)
    await ledger.aclose()
    assert ledger.stats().dropped == 50


async def test_a_locked_database_buffers_rows_and_writes_them_once_released(
    ledger: Ledger, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    ledger.record(row("weak", 0.1))
    await written(ledger, 1)
    path = settings.ledger.location
    assert path is not None
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for _ in range(20):
            ledger.record(row("strong", 0.9))
        deadline = time.monotonic() + WAIT
        while ledger.stats().failures < 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert ledger.stats().written == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await written(ledger, 21)
    assert ledger.stats().dropped == 0
    assert (await reports.savings(ledger))["requests"] == 21
    assert any("ledger: writes resumed" in r.getMessage() for r in caplog.records)


async def test_savings_count_model_switches_and_the_prompt_cache_they_lost(
    ledger: Ledger,
) -> None:
    now = time.time()
    turns = [
        row("strong", 0.9, conversation="c-1", input_tokens=1000, created=now),
        row("weak", 0.2, conversation="c-1", input_tokens=3000, created=now + 1),  # a switch
        row("weak", 0.2, conversation="c-1", input_tokens=5000, created=now + 2),
        row("strong", 0.9, conversation="c-2", input_tokens=800, created=now + 3),
        row("weak", 0.2, conversation="c-3", input_tokens=900, created=now + 4),  # its own
    ]
    for r in turns:
        ledger.record(r)
    await written(ledger, len(turns))
    report = await reports.savings(ledger)
    assert report["model_switches"] == 1
    # The weak model paid full price for the 1,000 tokens it could have read from cache.
    assert report["cache_lost_usd"] == pytest.approx(1000 * (0.15 - 0.075) / 1e6)


async def test_a_ledger_of_an_earlier_version_gains_the_new_columns(settings: Settings) -> None:
    path = str(settings.ledger.location)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE routellm_decisions (id VARCHAR(64) PRIMARY KEY, created FLOAT NOT NULL,"
            " endpoint VARCHAR(32) NOT NULL, requested VARCHAR(256) NOT NULL,"
            " model VARCHAR(256) NOT NULL, reason VARCHAR(32) NOT NULL,"
            " status INTEGER NOT NULL, stream BOOLEAN NOT NULL)"
        )
        db.execute(
            "INSERT INTO routellm_decisions VALUES ('old', ?, 'chat', 'router', 'weak', 'weak',"
            " 200, 0)",
            (time.time(),),
        )
    opened = Ledger.open(settings)
    try:
        new = row("weak", 0.2, classified_chars=12, classified_from="user_text")
        opened.record(new)
        await written(opened, 1)
        listed = await reports.recent_decisions(opened, limit=5, since=0)
    finally:
        await opened.aclose()
    by_id = {r.id: r for r in listed}
    assert by_id["old"].classified_from is None
    assert (by_id[new.id].classified_chars, by_id[new.id].classified_from) == (12, "user_text")
