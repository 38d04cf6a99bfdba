"""Is routing keeping quality? Feedback and shadow judging through the real app: uvicorn on
loopback, the fake upstream playing the strong, weak and judge models (the judge's verdicts
scripted by a `verdict=` marker in the prompt), a scripted classifier (P(LABEL_0) is the
`p=` in the prompt), and the real SQLite ledger."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from classifier.settings import SettingsError
from gateway.app import create_app
from gateway.quality.shadow import read_verdict
from gateway.settings.load import load_settings
from tests.gateway.fake_upstream import FakeUpstream
from tests.gateway.scripted import ScriptedClassifier
from tests.servers import serve

PRICE = {"input": 1.0, "output": 2.0}  # USD per million tokens
CALL = (3 * 1.0 + 4 * 2.0) / 1e6  # the fake upstream reports 3 input and 4 output tokens
JOB = 2 * CALL  # a non-streamed client answer: one shadow call, one judge call
Gateway = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def quality_gateway(tmp_path: Path, upstream: tuple[FakeUpstream, str]) -> Gateway:
    """`with quality_gateway(strong="ok:strong", judge="judge", **quality) as url:` serves a
    gateway whose `router` chooses between `strong` and `weak` at threshold 0.5, with shadow
    judging on every routed request unless `quality` says otherwise."""
    _, fake_url = upstream

    @contextmanager
    def run(
        *,
        strong: str = "ok:strong",
        weak: str = "ok:weak",
        judge: str = "judge",
        env: dict[str, str] | None = None,
        **quality: Any,
    ) -> Iterator[str]:
        doc = {
            "upstreams": {"fake": {"base_url": f"{fake_url}/v1"}},
            "models": {
                name: {"upstream": "fake", "model": model, "price": PRICE}
                for name, model in (("strong", strong), ("weak", weak), ("judge", judge))
            },
            "routing": {"strong": "strong", "weak": "weak", "threshold": 0.5},
            "quality": {"shadow_share": 1.0, "judge": "judge", "daily_budget_usd": 1.0, **quality},
        }
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(doc))
        settings = load_settings(
            {"ROUTELLM_LEDGER": str(tmp_path / "ledger.sqlite3"), **(env or {})}, str(path)
        )
        with serve(create_app(settings, classifier=ScriptedClassifier())) as url:
            yield url

    return run


def ask(url: str, prompt: str, *, stream: bool = False, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = {"model": "router", "messages": [{"role": "user", "content": prompt}], "stream": stream}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=10)


def exported(url: str, count: int, *, judged: int = 0, seconds: float = 10) -> list[dict[str, Any]]:
    """`/v1/decisions` once `count` rows, `judged` of them with a verdict, are in the ledger
    (bounded wait: the writer and the shadow jobs run in the background)."""
    deadline = time.monotonic() + seconds
    while True:
        data: list[dict[str, Any]] = httpx.get(f"{url}/v1/decisions").json()["data"]
        done = sum(row["verdict"] is not None for row in data)
        if (len(data) >= count and done >= judged) or time.monotonic() > deadline:
            return data
        time.sleep(0.05)


def own_ledger(tmp_path: Path, name: str) -> dict[str, str]:
    return {"ROUTELLM_LEDGER": str(tmp_path / f"{name}.sqlite3")}


def quality(url: str) -> dict[str, Any]:
    figures: dict[str, Any] = httpx.get(f"{url}/v1/dashboard").json()["quality"]
    return figures


def test_verdicts_fill_the_reliability_diagram_as_scripted(quality_gateway: Gateway) -> None:
    script = [
        (0.15, "weak"),
        (0.15, "tie"),
        (0.12, "strong"),
        (0.85, "strong"),
        (0.85, "strong"),
        (0.88, "weak"),
    ]
    with quality_gateway() as url:
        answers = [ask(url, f"question {i} p={p} verdict={v}") for i, (p, v) in enumerate(script)]
        ask(url, "a streamed one p=0.6 verdict=tie", stream=True)
        rows = exported(url, 7, judged=7)
        figures = quality(url)

    assert all(a.status_code == 200 for a in answers)
    by_id = {row["id"]: row for row in rows}
    for answer, (p, scripted) in zip(answers, script, strict=True):
        row = by_id[answer.headers["x-routellm-request-id"]]
        picked = "strong" if p >= 0.5 else "weak"
        assert row["model"] == picked
        assert row["verdict"]["verdict"] == scripted
        assert row["verdict"]["picked"] == picked
        assert (row["verdict"]["strong"], row["verdict"]["weak"]) == ("strong", "weak")
        assert row["verdict"]["judge"] == "judge"
        assert row["verdict"]["cost_usd"] == pytest.approx(JOB)
        assert row["verdict"]["error"] is None
    streamed = next(row for row in rows if row["stream"])
    # A streamed answer was never buffered: the picked model is asked again, so three calls.
    assert streamed["verdict"]["verdict"] == "tie"
    assert streamed["verdict"]["cost_usd"] == pytest.approx(3 * CALL)

    buckets = {round(b["low"], 1): b for b in figures["reliability"]}
    low, high, middle = buckets[0.1], buckets[0.8], buckets[0.6]
    assert (low["judged"], low["strong"], low["tie"], low["weak"]) == (3, 1, 1, 1)
    assert low["predicted"] == pytest.approx((0.15 + 0.15 + 0.12) / 3)
    assert low["judged_win_rate"] == pytest.approx(1 / 3)
    assert (high["judged"], high["strong"], high["weak"]) == (3, 2, 1)
    assert high["predicted"] == pytest.approx((0.85 + 0.85 + 0.88) / 3)
    assert high["judged_win_rate"] == pytest.approx(2 / 3)
    assert (middle["judged"], middle["tie"], middle["judged_win_rate"]) == (1, 1, 0.0)
    assert sum(b["judged"] for b in figures["reliability"]) == 7

    # At threshold 0.5, the four requests at p ≥ 0.5 keep the strong answer; of the three
    # below, only the one the judge gave to the strong model loses quality: 6 of 7 kept.
    kept = figures["kept"]
    assert (kept["judged"], kept["kept"], kept["strong_share"]) == (7, 6 / 7, 4 / 7)
    z, n, k = 1.959963984540054, 7, 6
    p_hat = k / n
    centre = (p_hat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p_hat * (1 - p_hat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert kept["interval"] == pytest.approx([centre - half, centre + half])
    assert kept["interval_kind"] == "wilson-95"
    shadow = figures["shadow"]
    assert (shadow["attempts"], shadow["judged"], shadow["failed"]) == (7, 7, 0)
    assert shadow["process"] == {
        "eligible": 7,
        "sampled": 7,
        "started": 7,
        "waiting": 0,
        "judged": 7,
        "failed": 0,
        "busy": 0,
        "over_budget": 0,
        "spent_today_usd": pytest.approx(6 * JOB + 3 * CALL),
    }
    assert shadow["spent_usd"] == pytest.approx(6 * JOB + 3 * CALL)


def test_the_judges_order_is_mapped_back() -> None:
    assert read_verdict("A is better.\n[[A]]", strong_first=True) == "strong"
    assert read_verdict("[[A]]", strong_first=False) == "weak"
    assert read_verdict("[[B]] ... on reflection [[B]]", strong_first=True) == "weak"
    assert read_verdict("[[B]]", strong_first=False) == "strong"
    assert read_verdict("[[A]] no, [[C]]", strong_first=True) == "tie"


def test_the_budget_stops_shadowing_at_the_cap_and_survives_a_restart(
    quality_gateway: Gateway,
) -> None:
    cap = 1.5 * JOB  # the first job spends JOB (below the cap), the second reaches past it
    with quality_gateway(daily_budget_usd=cap) as url:
        for i in range(2):
            ask(url, f"q{i} p=0.2 verdict=strong")
            exported(url, i + 1, judged=i + 1)
        later = [ask(url, f"later {i} p=0.2 verdict=strong") for i in range(3)]
        rows = exported(url, 5, judged=2)
        figures = quality(url)
    assert all(answer.status_code == 200 for answer in later)
    assert sum(row["verdict"] is not None for row in rows) == 2
    assert figures["shadow"]["spent_usd"] == pytest.approx(2 * JOB)
    assert figures["shadow"]["spent_usd"] > cap  # the job that crossed it finished
    assert figures["shadow"]["process"]["over_budget"] == 3

    with quality_gateway(daily_budget_usd=cap) as url:  # today's spend is read back
        ask(url, "after restart p=0.2 verdict=strong")
        rows = exported(url, 6, judged=2)
    assert sum(row["verdict"] is not None for row in rows) == 2


def test_failing_shadow_and_judge_calls_never_touch_clients_or_breakers(
    quality_gateway: Gateway, tmp_path: Path
) -> None:
    # The strong model always fails: clients sent to the weak model never notice, and the
    # breaker that would open after 5 client failures stays closed.
    with quality_gateway(strong="status-500") as url:
        answers = [ask(url, f"q{i} p=0.1") for i in range(7)]
        rows = exported(url, 7, judged=0)
        time.sleep(0.2)
        deadline = time.monotonic() + 10
        while quality(url)["shadow"]["attempts"] < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        health = httpx.get(f"{url}/health").json()
        metrics = httpx.get(f"{url}/metrics").text
        figures = quality(url)
    assert [a.status_code for a in answers] == [200] * 7
    assert all(
        a.json()["choices"][0]["message"]["content"] == "Hello from ok:weak!" for a in answers
    )
    assert health["breakers"] == {"deployments": [], "hosts": []}
    assert "routellm_upstream_errors_total{" not in metrics
    assert figures["shadow"]["attempts"] == 7
    assert figures["shadow"]["failed"] == 7
    assert figures["shadow"]["judged"] == 0
    assert all(row["verdict"] is None or row["verdict"]["verdict"] is None for row in rows)

    # A judge that fails, and one that never answers: the client's answer is unchanged.
    with quality_gateway(judge="status-503", env=own_ledger(tmp_path, "503")) as url:
        answer = ask(url, "q p=0.9")
        rows = exported(url, 1, judged=1)
    assert answer.json()["choices"][0]["message"]["content"] == "Hello from ok:strong!"
    assert rows[0]["verdict"]["verdict"] is None
    assert rows[0]["verdict"]["error"] == "'judge' answered HTTP 503"
    # The shadow answer is paid for; a failed call without usage is not billed.
    assert rows[0]["verdict"]["cost_usd"] == pytest.approx(CALL)

    with quality_gateway(judge="hang", timeout=0.5, env=own_ledger(tmp_path, "hang")) as url:
        answer = ask(url, "q p=0.9")
        rows = exported(url, 1, judged=1)
    assert answer.status_code == 200
    assert rows[0]["verdict"]["error"] == "timed out after 0.5 s"


def test_jobs_are_bounded_and_shutdown_cancels_them_keeping_their_spend(
    quality_gateway: Gateway, tmp_path: Path
) -> None:
    started = time.monotonic()
    with quality_gateway(judge="hang", timeout=3600, concurrency=1, queue=1) as url:
        answers = [ask(url, f"q{i} p=0.9") for i in range(3)]
        exported(url, 3)
        process = quality(url)["shadow"]["process"]
    assert [a.status_code for a in answers] == [200] * 3
    # One job, held by the hung judge; one request waits for it; the queue of one is full.
    assert (process["started"], process["waiting"], process["busy"]) == (1, 1, 1)
    assert time.monotonic() - started < 30  # the hanging judge did not hold the shutdown
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        ((error, cost),) = db.execute("SELECT error, cost_usd FROM routellm_verdicts").fetchall()
    assert error == "cancelled at shutdown"
    assert cost == pytest.approx(CALL)  # the shadow answer arrived before the judge hung


def test_a_sampled_request_waits_for_a_job_instead_of_being_skipped(
    quality_gateway: Gateway,
) -> None:
    """Share 1.0, a judge that takes 1.5 s, 12 requests one after another: every one is judged
    (they queue behind the 4 jobs), so the share judged is the share configured."""
    with quality_gateway(judge="slow-judge") as url:
        answers = [ask(url, f"q{i} p=0.9 verdict=strong") for i in range(12)]
        rows = exported(url, 12, judged=12, seconds=30)
        process = quality(url)["shadow"]["process"]
    assert [a.status_code for a in answers] == [200] * 12
    assert sum(1 for r in rows if r["verdict"] and r["verdict"]["verdict"] == "strong") == 12
    assert (process["eligible"], process["sampled"], process["started"]) == (12, 12, 12)
    assert (process["busy"], process["over_budget"], process["waiting"]) == (0, 0, 0)


def test_feedback_is_stored_replaced_exported_and_shown_per_model(
    quality_gateway: Gateway,
) -> None:
    keys = {"ROUTELLM_API_KEYS": "client-key", "ROUTELLM_ADMIN_KEYS": "admin-key"}
    with quality_gateway(shadow_share=0.0, env=keys) as url:
        admin = {"authorization": "Bearer admin-key"}
        client = {"authorization": "Bearer client-key"}
        strong = ask(url, "hard p=0.9", key="client-key").headers["x-routellm-request-id"]
        weak_ids = [
            ask(url, f"easy {i} p=0.1", key="client-key").headers["x-routellm-request-id"]
            for i in range(2)
        ]

        def give(body: dict[str, Any], headers: dict[str, str] = client) -> httpx.Response:
            return httpx.post(f"{url}/v1/feedback", json=body, headers=headers, timeout=10)

        # Given at once: the decision row may still be waiting for the ledger's writer.
        first = give({"request_id": strong, "score": -1, "comment": "wrong"})
        assert first.status_code == 200, first.text
        assert first.json()["score"] == -1
        replaced = give({"request_id": strong, "score": 1})
        assert replaced.json() == {
            "object": "feedback",
            "request_id": strong,
            "score": 1.0,
            "raw_score": 1.0,
            "scale": "signed",
            "comment": None,
        }
        unit = give({"request_id": weak_ids[0], "score": 0.25, "scale": "unit"})
        assert unit.json()["score"] == -0.5

        unknown = give({"request_id": "req_nope", "score": 1})
        bad = [
            give({"request_id": strong, "score": 2}),
            give({"request_id": strong, "score": -0.5, "scale": "unit"}),
            give({"request_id": strong, "score": True}),
            give({"request_id": strong}),
            give({"request_id": strong, "score": 1, "scale": "stars"}),
            give({"request_id": strong, "score": 1, "extra": 1}),
            give({"score": 1}),
        ]
        unauthorised = give({"request_id": strong, "score": 1}, headers={})
        rows = httpx.get(f"{url}/v1/decisions", headers=admin).json()["data"]
        jsonl = httpx.get(f"{url}/v1/decisions?format=jsonl", headers=admin).text
        figures = httpx.get(f"{url}/v1/dashboard", headers=admin).json()["quality"]

    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "request_not_found"
    assert unknown.json()["error"]["type"] == "invalid_request_error"
    assert [r.status_code for r in bad] == [400] * len(bad)
    assert [r.json()["error"]["param"] for r in bad] == [
        "score",
        "score",
        "score",
        "score",
        "scale",
        "extra",
        "request_id",
    ]
    assert unauthorised.status_code == 401
    by_id = {row["id"]: row for row in rows}
    assert by_id[strong]["feedback"]["score"] == 1.0
    assert by_id[strong]["feedback"]["comment"] is None
    assert by_id[weak_ids[0]]["feedback"]["raw_score"] == 0.25
    assert by_id[weak_ids[1]]["feedback"] is None
    assert all(row["verdict"] is None for row in rows)
    assert f'"id":"{strong}"' in jsonl
    assert '"feedback":{"score":1.0' in jsonl
    assert figures["feedback"]["strong"] == {
        "requests": 1,
        "feedback": 1,
        "rate": 1.0,
        "mean_score": 1.0,
    }
    assert figures["feedback"]["weak"] == {
        "requests": 2,
        "feedback": 1,
        "rate": 0.5,
        "mean_score": -0.5,
    }


@pytest.mark.parametrize(
    ("quality", "message"),
    [
        ({"shadow_share": 0.1, "daily_budget_usd": 1}, "needs a `judge` model"),
        ({"shadow_share": 0.1, "judge": "judge"}, "needs a daily_budget_usd above 0"),
        ({"shadow_share": 2, "judge": "judge", "daily_budget_usd": 1}, "shadow_share=2"),
        ({"judge": "nobody"}, "judge 'nobody' is not a model"),
        ({"shadow_share": 0.1, "judge": "judge", "daily_budget_usd": 1}, "'weak' has no price"),
        ({"shadow": 1}, "unknown key 'shadow'"),
    ],
)
def test_quality_settings_are_checked_at_start(
    tmp_path: Path, quality: dict[str, Any], message: str
) -> None:
    doc = {
        "upstreams": {"u": {"base_url": "http://127.0.0.1:9/v1"}},
        "models": {
            "strong": {"upstream": "u", "price": PRICE},
            "weak": {"upstream": "u"},
            "judge": {"upstream": "u", "price": PRICE},
        },
        "routing": {"strong": "strong", "weak": "weak"},
        "quality": quality,
    }
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError, match=message):
        load_settings({}, str(path))


def test_shadowing_needs_the_ledger(tmp_path: Path) -> None:
    doc = {
        "upstreams": {"u": {"base_url": "http://127.0.0.1:9/v1"}},
        "models": {m: {"upstream": "u", "price": PRICE} for m in ("strong", "weak", "judge")},
        "routing": {"strong": "strong", "weak": "weak"},
        "quality": {"shadow_share": 0.1, "judge": "judge", "daily_budget_usd": 1},
    }
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError, match="ROUTELLM_LEDGER=off"):
        load_settings({"ROUTELLM_LEDGER": "off"}, str(path))
