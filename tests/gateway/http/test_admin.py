"""The admin routes through the real app under uvicorn: figures, formats, keys, errors, /ui."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar

from classifier.local import LocalClassifier
from gateway.app import create_app
from gateway.settings.load import Settings
from tests.gateway.rows import PRICES_ENV, known_mix
from tests.servers import serve


@pytest.fixture
def admin_app(
    make_settings: Callable[..., Settings], classifiers: dict[int, LocalClassifier]
) -> Callable[..., Any]:
    @contextmanager
    def run(**env: str) -> Iterator[tuple[Litestar, str]]:
        app = create_app(
            make_settings(ROUTELLM_PRICES=PRICES_ENV, **env), classifier=classifiers[2]
        )
        with serve(app) as url:
            yield app, url

    return run


def fill(app: Litestar) -> list[Any]:
    rows = known_mix()
    for r in rows:
        app.state.ledger.record(r)
    deadline = time.monotonic() + 10
    while app.state.ledger.stats().written < len(rows):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return rows


def test_decisions_and_savings_report_the_ledger(admin_app: Callable[..., Any]) -> None:
    with admin_app() as (app, url):
        rows = fill(app)
        listed = httpx.get(f"{url}/v1/decisions", params={"limit": 2}).json()
        newest = sorted(rows, key=lambda r: r.created)[::-1][:2]
        assert listed["object"] == "list"
        assert [d["id"] for d in listed["data"]] == [r.id for r in newest]
        first = listed["data"][0]
        for key in (
            "id",
            "created",
            "requested",
            "model",
            "reason",
            "label",
            "score",
            "scores",
            "threshold",
            "status",
            "stream",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "baseline_cost_usd",
            "classify_ms",
            "first_byte_ms",
            "total_ms",
            "conversation",
        ):
            assert key in first
        assert "prompt" not in first
        lines = httpx.get(f"{url}/v1/decisions", params={"format": "jsonl"})
        assert lines.headers["content-type"].startswith("application/x-ndjson")
        assert len([json.loads(x) for x in lines.text.splitlines()]) == 7
        report = httpx.get(f"{url}/v1/savings", params={"since": "1h"}).json()
        assert report["requests"] == 7
        assert report["saved_usd"] == pytest.approx(0.0225 - 0.00981)
        dash = httpx.get(f"{url}/v1/dashboard", params={"since": "1h", "buckets": 6}).json()
        assert dash["savings"] == report
        assert sum(dash["histogram"]["counts"]) == 6
        assert dash["fallbacks"] == 0
        assert dash["errors"] == {"502": 1}
        assert dash["latency_ms"]["classify"] == {"p50": 5.0, "p90": 5.0, "p99": 5.0}
        whatif = httpx.get(f"{url}/v1/whatif", params={"threshold": 0.3}).json()
        assert whatif["strong_share"] == pytest.approx(4 / 6)
        # the rows carry no router name (as before the ledger named routers): the default's
        mine = httpx.get(f"{url}/v1/whatif", params={"threshold": 0.3, "router": "router"})
        assert mine.json() == whatif
        mf = httpx.get(f"{url}/v1/whatif", params={"threshold": 0.3, "router": "router-mf"})
        assert mf.json()["routed_requests"] == 0  # none of its decisions: all keep their cost
        assert mf.json()["requests"] == whatif["requests"]
        unknown = httpx.get(f"{url}/v1/whatif", params={"threshold": 0.3, "router": "nope"})
        assert unknown.status_code == 400
        assert unknown.json()["error"]["param"] == "router"


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "2.5"}, "limit"),
        ({"since": "last tuesday"}, "since"),
        ({"format": "csv"}, "format"),
    ],
)
def test_bad_queries_get_a_400_in_the_openai_shape(
    admin_app: Callable[..., Any], query: dict[str, str], param: str
) -> None:
    with admin_app() as (_, url):
        answer = httpx.get(f"{url}/v1/decisions", params=query)
        assert answer.status_code == 400
        assert answer.json()["error"]["param"] == param
        assert answer.json()["error"]["type"] == "invalid_request_error"
        missing = httpx.get(f"{url}/v1/whatif")
        assert missing.status_code == 400
        assert missing.json()["error"]["param"] == "threshold"


def test_admin_keys_guard_the_data_but_not_the_page(admin_app: Callable[..., Any]) -> None:
    with admin_app(ROUTELLM_API_KEYS="client") as (_, url):
        forbidden = httpx.get(f"{url}/v1/savings", headers={"authorization": "Bearer client"})
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "admin_key_required"
        assert httpx.get(f"{url}/ui").status_code == 200
    with admin_app(ROUTELLM_API_KEYS="client", ROUTELLM_ADMIN_KEYS="boss") as (_, url):
        for path in ("/v1/decisions", "/v1/savings", "/v1/dashboard", "/v1/whatif?threshold=0.5"):
            assert (
                httpx.get(f"{url}{path}", headers={"authorization": "Bearer client"}).status_code
                == 401
            )
            assert (
                httpx.get(f"{url}{path}", headers={"authorization": "Bearer boss"}).status_code
                == 200
            )
        page = httpx.get(f"{url}/ui/")
        assert page.status_code == 200
        assert "What routing saved" in page.text
        assert (
            httpx.get(f"{url}/ui/app.js")
            .headers["content-type"]
            .startswith(("text/javascript", "application/javascript"))
        )


def test_ledger_off_answers_404_ledger_disabled(admin_app: Callable[..., Any]) -> None:
    with admin_app(ROUTELLM_LEDGER="off") as (app, url):
        assert app.state.ledger is None
        answer = httpx.get(f"{url}/v1/savings")
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "ledger_disabled"


def test_an_unreadable_ledger_answers_503(admin_app: Callable[..., Any], tmp_path: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with admin_app(ROUTELLM_LEDGER=str(blocker / "l.db")) as (_, url):
        answer = httpx.get(f"{url}/v1/savings")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "ledger_unavailable"
