"""The ledger on a real PostgreSQL shared by two gateways, and PostgreSQL stopped mid-run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import httpx
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
