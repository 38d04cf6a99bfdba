"""The ledger on a real PostgreSQL shared by two gateways, and PostgreSQL stopped mid-run."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from classifier.local import LocalClassifier
from gateway.app import create_app
from gateway.ledger import reports
from gateway.ledger.writer import Ledger
from gateway.settings.load import Settings
from tests.gateway.postgres import Cluster
from tests.gateway.rows import PRICES_ENV, known_mix, row
from tests.servers import serve

WAIT = 15.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    pg = Cluster()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        pg.remove()


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_two_gateways_write_one_ledger_and_each_reads_the_whole_fleet(
    cluster: Cluster,
    make_settings: Callable[..., Settings],
    classifiers: dict[int, LocalClassifier],
) -> None:
    settings = make_settings(ROUTELLM_LEDGER=cluster.new_database(), ROUTELLM_PRICES=PRICES_ENV)
    first, second = (create_app(settings, classifier=classifiers[2]) for _ in range(2))
    mix = known_mix()
    with serve(first) as url_a, serve(second) as url_b:
        for i, r in enumerate(mix):
            (first if i % 2 else second).state.ledger.record(r)
        for app in (first, second):
            wait_for(lambda app=app: app.state.ledger.stats().buffered == 0, "both writers")
        for url in (url_a, url_b):
            listed = httpx.get(f"{url}/v1/decisions?limit=100").json()["data"]
            assert sorted(d["id"] for d in listed) == sorted(r.id for r in mix)
            report = httpx.get(f"{url}/v1/savings").json()
            assert report["requests"] == 7
            assert report["cost_usd"] == pytest.approx(2 * 0.0045 + 3 * 0.00027)
            assert report["baseline_cost_usd"] == pytest.approx(5 * 0.0045)


async def test_postgres_stopped_mid_run_buffers_counts_and_recovers(
    cluster: Cluster, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(ROUTELLM_LEDGER=cluster.new_database())
    ledger = Ledger.open(settings, buffer_rows=10)
    try:
        ledger.record(row("weak", 0.1))
        await asyncio.to_thread(wait_for, lambda: ledger.stats().written == 1, "first row")
        cluster.stop()
        try:
            for _ in range(30):
                ledger.record(
                    row("strong", 0.9)
                )  # returns at once: the queue takes it or counts it
            await asyncio.to_thread(wait_for, lambda: ledger.stats().failures >= 1, "a failure")
            stats = ledger.stats()
            assert stats.written == 1
            assert stats.dropped + stats.buffered == 30
            assert stats.buffered <= 20  # the queue's bound (10) plus the batch being retried
            assert stats.dropped >= 10
            with pytest.raises(OperationalError):
                await reports.savings(ledger)
        finally:
            cluster.start()
        kept = 30 - ledger.stats().dropped
        await asyncio.to_thread(
            wait_for, lambda: ledger.stats().written == 1 + kept, "writes to resume"
        )
        assert (await reports.savings(ledger))["requests"] == 1 + kept
    finally:
        await ledger.aclose()


FRESH_STARTS = 6


def create_at_once(ledgers: list[Ledger]) -> list[BaseException]:
    """Each ledger makes its schema on its own thread, all released at the same instant."""
    start = threading.Barrier(len(ledgers))
    errors: list[BaseException] = []

    def create(ledger: Ledger) -> None:
        start.wait()
        try:
            ledger.ensure_schema()
        except BaseException as exc:  # what a replica would log as `cannot write`
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def test_two_gateways_starting_on_a_fresh_database_make_one_schema_without_error(
    cluster: Cluster, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """Replicas rolled out together race to create the tables; they must take turns. Several
    fresh databases, each created by two ledgers at the same instant, as two processes would."""
    for _ in range(FRESH_STARTS):
        url = cluster.new_database()
        pair = [Ledger.open(make_settings(ROUTELLM_LEDGER=url)) for _ in range(2)]
        assert create_at_once(pair) == []
        for ledger in pair:
            ledger.record(row("strong", 0.9))
        wait_for(lambda pair=pair: all(x.stats().written == 1 for x in pair), "both rows")
        for ledger in pair:
            assert ledger.stats().failures == 0
            asyncio.run(ledger.aclose())
        with psycopg.connect(url) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'routellm_%'"
            ).fetchone()
        assert tables == (3,)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
