"""A many-model router through the real app: a router directory trained on planted data
(`tests.routers.planted`) chooses among four priced models on the fake upstream. Each topic goes
to the model good at it; the cost weight, from the router, the model name or the header, trades
quality for price; decisions carry every model's predicted quality into headers, `/v1/route`,
the ledger, savings, metrics and the dashboard (in headless Chromium); a reload swaps the
directory; a failing router falls back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from huggingface_hub import constants
from hypothesis import given
from hypothesis import strategies as st
from playwright.sync_api import sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.cli import main
from gateway.routing.weighing import choose
from gateway.settings.load import SettingsError, load_settings
from routers.heads import HEAD_FILE, KnnHead
from routers.manifest import Manifest, write_manifest
from tests.gateway.browser import ARGS, CHROMIUM, PROXY_VARIABLES, pct
from tests.gateway.conftest import SDK
from tests.gateway.fake_upstream import FakeUpstream
from tests.gateway.scripted import ScriptedClassifier
from tests.routers.planted import PRICES
from tests.servers import serve

NAMES = {"mathy": "alpha", "lawyer": "beta", "generalist": "gamma", "cheap": "delta"}
"""The data's model names → the configured models they stand for."""
MATHS = "Find the derivative of x^3 * ln(x)"
LAW = "Is a verbal contract binding under English common law?"


def write(path: Path, url: str, router: Path, **extra: Any) -> Path:
    models = {
        name: {
            "upstream": "fake",
            "model": f"ok:{name}",
            "price": {"input": PRICES[column][0], "output": PRICES[column][1]},
        }
        for column, name in NAMES.items()
    }
    doc = {
        "upstreams": {"fake": {"base_url": f"{url}/v1"}},
        "models": models,
        "routing": {"strong": "gamma", "weak": "delta"},
        "routers": {"team": {"router": str(router), "models": NAMES, **extra}},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def route(url: str, text: str, model: str = "team", **headers: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return httpx.post(f"{url}/v1/route", json=body, headers=headers, timeout=30)


def settled(url: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        rows: list[dict[str, Any]] = httpx.get(f"{url}/v1/decisions").json()["data"]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_each_topic_goes_to_its_model_and_the_weight_trades_quality_for_price(
    tmp_path: Path, upstream: tuple[FakeUpstream, str], planted_router: Callable[[str], Path]
) -> None:
    config = write(tmp_path / "gateway.yaml", upstream[1], planted_router("knn"))
    app = create_app(load_settings({}, str(config)), classifier=ScriptedClassifier())
    with serve(app) as url:
        maths, law = route(url, MATHS).json(), route(url, LAW).json()
        cheap = route(url, MATHS, "router-team-5").json()
        by_header = route(url, LAW, **{"x-routellm-cost-weight": "5"}).json()
        bad_header = route(url, LAW, **{"x-routellm-cost-weight": "lots"})
        bad_name = route(url, LAW, "router-team-cheap")
        not_many = route(url, LAW, "router", **{"x-routellm-cost-weight": "0.1"})
        listed = [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]
    assert (maths["model"], maths["reason"], maths["cost_weight"]) == ("alpha", "scored", 0.0)
    assert law["model"] == "beta"
    assert set(maths["scores"]) == {"alpha", "beta", "gamma", "delta"}
    assert maths["scores"]["alpha"] > maths["scores"]["beta"]
    assert maths["score"] == maths["scores"]["alpha"]
    assert (cheap["model"], cheap["cost_weight"]) == ("delta", 5.0)
    assert (by_header["model"], by_header["cost_weight"]) == ("delta", 5.0)
    assert bad_header.status_code == 400
    assert bad_header.json()["error"]["param"] == "x-routellm-cost-weight"
    assert "number ≥ 0" in bad_header.json()["error"]["message"]
    assert bad_name.status_code == 400
    assert "router-team-0.2" in bad_name.json()["error"]["message"]
    assert not_many.status_code == 400
    assert "many-model routers" in not_many.json()["error"]["message"]
    assert "team" in listed


def test_a_chat_answer_carries_the_decision_into_headers_ledger_savings_and_metrics(
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
    planted_router: Callable[[str], Path],
    sdk: SDK,
) -> None:
    config = write(
        tmp_path / "gateway.yaml", upstream[1], planted_router("linear"), cost_weight=0.01
    )
    env = {"ROUTELLM_LEDGER": str(tmp_path / "ledger.sqlite3")}
    app = create_app(load_settings(env, str(config)), classifier=ScriptedClassifier())
    with serve(app) as url:
        client = sdk.openai(url)
        answer = client.chat.completions.with_raw_response.create(
            model="team", messages=[{"role": "user", "content": MATHS}]
        )
        streamed = client.chat.completions.with_raw_response.create(
            model="team", messages=[{"role": "user", "content": LAW}], stream=True
        )
        list(streamed.parse())
        rows = settled(url, 2)
        savings = httpx.get(f"{url}/v1/savings").json()
        metrics = httpx.get(f"{url}/metrics").text
    headers = answer.headers
    assert (headers["x-routellm-model"], headers["x-routellm-reason"]) == ("alpha", "scored")
    assert headers["x-routellm-cost-weight"] == "0.01"
    scores = json.loads(headers["x-routellm-scores"])
    assert set(scores) == {"alpha", "beta", "gamma", "delta"}
    assert answer.parse().model.endswith("alpha")
    assert streamed.headers["x-routellm-model"] == "beta"
    by_id = {row["id"]: row for row in rows}
    row = by_id[headers["x-routellm-request-id"]]
    assert (row["model"], row["reason"], row["router"]) == ("alpha", "scored", "team")
    assert row["cost_weight"] == 0.01
    assert row["scores"] == pytest.approx(scores, abs=1e-4)
    gamma = (3 * PRICES["generalist"][0] + 4 * PRICES["generalist"][1]) / 1e6
    assert row["baseline_cost_usd"] == pytest.approx(gamma)  # the router's dearest model
    assert savings["by_model"]["alpha"]["requests"] == 1
    assert savings["by_model"]["beta"]["requests"] == 1
    assert savings["saved_usd"] > 0
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }
    assert samples[("routellm_cost_weight_count", ())] == 2
    assert samples[("routellm_predicted_quality_count", (("model", "delta"),))] == 2
    answered = (("model", "alpha"), ("reason", "scored"), ("status", "200"))
    assert samples[("routellm_requests_total", answered)] == 1


def test_a_reload_swaps_the_router_directory_without_a_restart(
    tmp_path: Path, upstream: tuple[FakeUpstream, str], planted_router: Callable[[str], Path]
) -> None:
    config = write(tmp_path / "gateway.yaml", upstream[1], planted_router("knn"))
    env = {"ROUTELLM_LEDGER": "off"}
    app = create_app(
        load_settings(env, str(config)),
        classifier=ScriptedClassifier(),
        reload=lambda: load_settings(env, str(config)),
    )
    with serve(app) as url:
        before = httpx.get(f"{url}/health").json()["router_checkpoints"]["team"]
        write(config, upstream[1], planted_router("linear"))
        reloaded = httpx.post(f"{url}/v1/admin/reload", timeout=60)
        after = httpx.get(f"{url}/health").json()["router_checkpoints"]["team"]
        decided = route(url, LAW).json()
    assert reloaded.status_code == 200, reloaded.text
    assert before == str(planted_router("knn"))
    assert after == str(planted_router("linear"))
    assert decided["model"] == "beta"


def test_a_router_that_cannot_embed_sends_its_requests_to_the_fallback(
    tmp_path: Path, upstream: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # With an embeddings API set, `router-mf-<t>` tries RouteLLM's default MF checkpoint from
    # the hub; offline it is not served, and the gateway starts all the same.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    directory = tmp_path / "remote-router"
    directory.mkdir()
    head = KnnHead(np.eye(4, dtype=np.float32), np.eye(4, dtype=np.float32))
    np.savez(directory / HEAD_FILE, **head.arrays())
    manifest = Manifest("embedding", tuple(NAMES), encoder="remote:tiny-embed", head="knn")
    write_manifest(directory, manifest, [HEAD_FILE])
    config = write(tmp_path / "gateway.yaml", upstream[1], directory, fallback="delta")
    # Nothing listens on port 9 of loopback: every embeddings call fails at once.
    env = {"ROUTELLM_LEDGER": "off", "ROUTELLM_EMBEDDINGS_URL": "http://127.0.0.1:9/v1"}
    app = create_app(load_settings(env, str(config)), classifier=ScriptedClassifier())
    with serve(app) as url:
        decided = route(url, MATHS).json()
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "team", "messages": [{"role": "user", "content": MATHS}]},
            timeout=30,
        )
        mf = route(url, MATHS, "router-mf-0.5")
    assert (decided["model"], decided["reason"]) == ("delta", "classifier_error")
    assert mf.status_code == 400
    assert "ROUTELLM_MF_MODEL" in mf.json()["error"]["message"]
    assert answer.status_code == 200
    assert answer.headers["x-routellm-model"] == "delta"


def test_a_router_without_prices_or_without_models_is_refused_at_start(
    tmp_path: Path, upstream: tuple[FakeUpstream, str], planted_router: Callable[[str], Path]
) -> None:
    config = write(tmp_path / "gateway.yaml", upstream[1], planted_router("knn"))
    doc = yaml.safe_load(config.read_text())
    del doc["models"]["gamma"]["price"]
    config.write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError, match=r"'gamma' has none: add `price: \{input"):
        load_settings({}, str(config))
    doc["routers"]["team"]["models"] = ["alpha"]
    config.write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError, match="at least two distinct models"):
        load_settings({}, str(config))
    doc["models"]["gamma"]["price"] = {"input": 5, "output": 15}
    doc["routers"]["team"].update(models=NAMES, dtype="bfloat16")
    config.write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError, match="beside `router:`: use float32 or int8"):
        load_settings({}, str(config))
    doc["routers"]["team"]["dtype"] = "int8"
    config.write_text(yaml.safe_dump(doc))
    assert load_settings({}, str(config)).routers["team"].dtype == "int8"


@given(
    st.integers(1, 6).flatmap(
        lambda m: st.tuples(
            st.lists(st.lists(st.floats(0, 1), min_size=m, max_size=m), min_size=1, max_size=20),
            st.lists(st.floats(0, 1), min_size=m, max_size=m),
        )
    ),
    st.floats(0, 10),
    st.floats(0, 10),
)
def test_a_higher_weight_never_raises_the_mean_cost(
    data: tuple[list[list[float]], list[float]], low: float, high: float
) -> None:
    quality, costs = np.asarray(data[0]), np.asarray(data[1])
    low, high = min(low, high), max(low, high)
    cheap = costs[choose(quality, costs, high)].mean()
    dear = costs[choose(quality, costs, low)].mean()
    assert cheap <= dear + 1e-12


def test_the_dashboard_shows_each_models_share_and_predicted_quality(
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
    planted_router: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in PROXY_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    config = write(tmp_path / "gateway.yaml", upstream[1], planted_router("knn"))
    env = {"ROUTELLM_LEDGER": str(tmp_path / "ledger.sqlite3")}
    app = create_app(load_settings(env, str(config)), classifier=ScriptedClassifier())
    with serve(app) as url:
        for text, model in ((MATHS, "team"), (LAW, "team"), (LAW, "router-team-5")):
            body = {"model": model, "messages": [{"role": "user", "content": text}]}
            assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 200
        rows = settled(url, 3)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(f"{url}/ui")
            page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('Updated')"
            )
            cells = page.eval_on_selector_all(
                "#many tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
            )
            weights = page.inner_text("#many-weights")
            browser.close()
    shown = {model: (chosen, share, quality) for _, model, chosen, share, quality in cells}
    assert set(shown) == {"alpha", "beta", "gamma", "delta"}
    assert shown["alpha"][:2] == ("1", pct(1 / 3))
    assert shown["beta"][:2] == ("1", pct(1 / 3))
    assert shown["delta"][:2] == ("1", pct(1 / 3))
    assert shown["gamma"][0] == "0"
    mean_alpha = sum(r["scores"]["alpha"] for r in rows) / 3
    assert shown["alpha"][2] == f"{mean_alpha:.3f}"
    assert weights == f"team: 3 requests, mean cost weight {5 / 3:.3f}"


def chat_turn(url: str, texts: list[str], **headers: str) -> httpx.Response:
    """One turn of a conversation whose user said `texts` in order (answers between them)."""
    messages: list[dict[str, Any]] = []
    for text in texts:
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
    body = {"model": "team", "messages": messages[:-1]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)


@pytest.mark.parametrize(("policy", "second"), [("upgrade", "alpha"), ("per_turn", "beta")])
def test_a_conversation_climbs_by_price_and_a_tool_turn_keeps_its_model(
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
    planted_router: Callable[[str], Path],
    policy: str,
    second: str,
) -> None:
    config = write(tmp_path / "gateway.yaml", upstream[1], planted_router("knn"))
    env = {"ROUTELLM_LEDGER": "off", "ROUTELLM_CONVERSATION_POLICY": policy}
    app = create_app(load_settings(env, str(config)), classifier=ScriptedClassifier())
    conversation = {"x-routellm-conversation": f"c-{policy}"}
    with serve(app) as url:
        first = chat_turn(url, [MATHS], **conversation)
        # The law turn's best model (beta) costs what alpha does: under `upgrade` no climb.
        later = chat_turn(url, [MATHS, LAW], **conversation)
        tool_turn = httpx.post(
            f"{url}/v1/chat/completions",
            json={
                "model": "team",
                "messages": [
                    {"role": "user", "content": LAW},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "lookup", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "found it"},
                ],
            },
            headers=conversation,
            timeout=30,
        )
    assert first.headers["x-routellm-model"] == "alpha"
    assert later.headers["x-routellm-model"] == second
    assert later.headers["x-routellm-reason"] == ("pinned" if policy == "upgrade" else "scored")
    assert tool_turn.status_code == 200
    if policy == "upgrade":
        assert tool_turn.headers["x-routellm-model"] == "alpha"
        assert tool_turn.headers["x-routellm-reason"] == "pinned"


def test_a_many_model_router_can_shadow_another(
    tmp_path: Path, upstream: tuple[FakeUpstream, str], planted_router: Callable[[str], Path]
) -> None:
    config = write(
        tmp_path / "gateway.yaml",
        upstream[1],
        planted_router("knn"),
        candidate={"router": "pricey", "mode": "shadow"},
    )
    doc = yaml.safe_load(config.read_text())
    doc["routers"]["pricey"] = {
        "router": str(planted_router("linear")),
        "models": NAMES,
        "cost_weight": 5,
    }
    config.write_text(yaml.safe_dump(doc))
    env = {"ROUTELLM_LEDGER": str(tmp_path / "ledger.sqlite3")}
    app = create_app(load_settings(env, str(config)), classifier=ScriptedClassifier())
    with serve(app) as url:
        body = {"model": "team", "messages": [{"role": "user", "content": MATHS}]}
        answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
        (row,) = settled(url, 1)
    assert answer.headers["x-routellm-model"] == "alpha"
    assert (row["model"], row["candidate_model"]) == ("alpha", "delta")
    assert row["candidate_score"] == pytest.approx(row["scores"]["delta"], abs=0.2)


def test_calibrate_finds_the_weight_from_the_ledgers_recorded_predictions(
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
    planted_router: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write(tmp_path / "gateway.yaml", upstream[1], planted_router("knn"))
    ledger = tmp_path / "ledger.sqlite3"
    env = {"ROUTELLM_LEDGER": str(ledger)}
    app = create_app(load_settings(env, str(config)), classifier=ScriptedClassifier())
    with serve(app) as url:
        for text in (MATHS, LAW, "Evaluate the limit of sin(x)/x", "Define tort law"):
            body = {"model": "team", "messages": [{"role": "user", "content": text}]}
            assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 200
        settled(url, 4)
    monkeypatch.setenv("ROUTELLM_LEDGER", str(ledger))

    def calibrate(*args: str) -> tuple[int, str, str]:
        code = main(["calibrate", "--from-ledger", "--config", str(config), *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = calibrate("--router-name", "team", "--cost-share", "0.05")
    assert code == 0, err
    cheap = float(out)
    assert cheap > 0
    assert "4 decisions of 'team'" in err
    assert calibrate("--router-name", "team", "--cost-share", "1")[1].strip() == "0"
    loose = float(calibrate("--router-name", "team", "--quality-share", "0")[1])
    strict = float(calibrate("--router-name", "team", "--quality-share", "0.99")[1])
    assert loose > strict >= 0  # keeping less quality allows a heavier weight on price
    code, _, err = calibrate("--router-name", "nobody", "--cost-share", "0.5")
    assert code == 2
    assert "'nobody' is not a many-model router of this config: use one of team" in err
