"""Savings through the real app: usage from the upstream, cost against the baseline, the same
figures in `/metrics`, `/v1/savings` and the ledger; the client's stream untouched by the usage
the gateway asks for; a broken ledger never costs an answer."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.fake_upstream import FakeUpstream

Gateway = Callable[..., AbstractContextManager[str]]
PRICES = json.dumps(
    {"strong": {"input": 2.5, "output": 10}, "weak": {"input": 0.15, "output": 0.6}}
)
SECRET = "my very private question about payroll"
WEAK = (3 * 0.15 + 4 * 0.6) / 1e6  # the fake upstream reports 3 input and 4 output tokens
STRONG = (3 * 2.5 + 4 * 10) / 1e6


def chat(url: str, model: str, *, stream: bool = False, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": SECRET}], "stream": stream}
    return httpx.post(f"{url}/v1/chat/completions", json={**body, **extra}, timeout=10)


def events(response: httpx.Response) -> list[Any]:
    lines = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def settled(url: str, requests: int) -> dict[str, Any]:
    """`/v1/savings` once the ledger's writer has caught up with `requests` rows."""
    deadline = time.monotonic() + 5
    while True:
        savings: dict[str, Any] = httpx.get(f"{url}/v1/savings").json()
        if savings["requests"] >= requests or time.monotonic() > deadline:
            return savings
        time.sleep(0.05)


def test_costs_and_savings_agree_everywhere(gateway: Gateway, tmp_path: Path) -> None:
    ledger = tmp_path / "decisions.sqlite3"
    with gateway(label=2, ROUTELLM_PRICES=PRICES, ROUTELLM_LEDGER=str(ledger)) as url:
        answers = [
            chat(url, "weak"),
            chat(url, "strong", stream=True),
            chat(url, "router", stream=True, stream_options={"include_usage": True}),
        ]
        savings = settled(url, 3)
        decisions = httpx.get(f"{url}/v1/decisions").json()["data"]
        metrics = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
            for s in family.samples
        }
    assert [a.status_code for a in answers] == [200, 200, 200]
    ids = [a.headers["x-routellm-request-id"] for a in answers]
    assert sorted(ids) == sorted(d["id"] for d in decisions)
    assert savings["requests"] == 3
    assert savings["cost_usd"] == pytest.approx(2 * WEAK + STRONG)
    assert savings["baseline_cost_usd"] == pytest.approx(3 * STRONG)
    assert savings["saved_usd"] == pytest.approx(2 * (STRONG - WEAK))
    assert savings["by_model"]["weak"]["requests"] == 2
    assert savings["unpriced_requests"] == 0
    for row in decisions:
        assert (row["input_tokens"], row["output_tokens"]) == (3, 4)
        assert row["cost_usd"] == pytest.approx(WEAK if row["model"] == "weak" else STRONG)
        assert row["baseline_cost_usd"] == pytest.approx(STRONG)
    assert metrics[("routellm_cost_usd_total", (("model", "weak"),))] == pytest.approx(2 * WEAK)
    assert metrics[("routellm_cost_usd_total", (("model", "strong"),))] == pytest.approx(STRONG)
    assert metrics[("routellm_baseline_cost_usd_total", ())] == pytest.approx(3 * STRONG)
    tokens = ("routellm_tokens_total", (("kind", "output"), ("model", "weak")))
    assert metrics[tokens] == 8
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("decisions.sqlite3*"))
    assert SECRET.encode() not in stored  # no prompt text unless ROUTELLM_LEDGER_PROMPTS=1


def test_the_usage_the_gateway_asks_for_never_reaches_a_client_that_did_not(
    gateway: Gateway, upstream: tuple[FakeUpstream, str]
) -> None:
    fake, _ = upstream
    with gateway(label=2) as url:
        plain = events(chat(url, "strong", stream=True))
        asked_upstream = fake.history[-1].body["stream_options"]
        asked = events(chat(url, "strong", stream=True, stream_options={"include_usage": True}))
    assert asked_upstream == {"include_usage": True}
    assert plain[-1] == "[DONE]"
    assert all("usage" not in chunk for chunk in plain[:-1])
    assert all(chunk["choices"] for chunk in plain[:-1])
    usage_only = [c for c in asked[:-1] if c["choices"] == []]
    assert [c["usage"] for c in usage_only] == [
        {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    ]
    assert asked[-2] is usage_only[0]  # where the upstream sent it: last before [DONE]
    assert asked[0]["usage"] is None  # the client asked: its chunks stay as the upstream sent


def test_an_unwritable_ledger_never_costs_an_answer(gateway: Gateway, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with gateway(label=2, ROUTELLM_LEDGER=str(blocker / "ledger.sqlite3")) as url:
        answers = [chat(url, "router"), chat(url, "router", stream=True)]
        deadline = time.monotonic() + 5
        while ledger_failures(url) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        failures = ledger_failures(url)
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1].text.endswith("data: [DONE]\n\n")
    assert failures > 0  # counted, and the answers went out all the same


def ledger_failures(url: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        if family.name == "routellm_ledger_write_failures":
            return float(family.samples[0].value)
    raise AssertionError("no routellm_ledger_write_failures_total")


def test_a_hostile_error_code_cannot_corrupt_metrics(gateway: Gateway) -> None:
    with gateway(label=2) as url:
        response = chat(url, "status-400")
        text = httpx.get(f"{url}/metrics").text
    assert response.status_code == 400
    families = {f.name: f for f in text_string_to_metric_families(text)}
    codes = {s.labels["code"] for s in families["routellm_upstream_errors"].samples}
    assert codes == {"http_400"}
