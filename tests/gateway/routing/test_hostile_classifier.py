"""A hostile remote classifier (ROUTELLM_BERT_URL) on loopback: whatever it answers, the client
gets the fallback model's normal answer with reason `classifier_error`, the failure is counted
in /metrics and logged once, and no header carries a value the classifier made up."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import httpx
import pytest

from gateway.app import create_app
from gateway.settings.load import Settings
from tests.classifier.fake_servers import HOSTILE, FakeRemote
from tests.gateway.conftest import SDK
from tests.servers import serve

HI = [{"role": "user", "content": "How do I write a resignation letter?"}]
MAPPING = json.dumps({"LABEL_0": "strong", "LABEL_1": "middle", "LABEL_2": "weak"})


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    with serve(FakeRemote()) as url:
        yield url


@pytest.mark.parametrize("mapping", [None, MAPPING], ids=["winrate", "mapping"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_classifier_costs_only_the_routing(
    sdk: SDK,
    hostile_url: str,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
    case: str,
    mapping: str | None,
) -> None:
    env = {"ROUTELLM_BERT_URL": f"{hostile_url}/hostile/{case}"}
    if mapping:
        env["ROUTELLM_MAPPING"] = mapping
    app = create_app(make_settings(**env))
    with caplog.at_level(logging.WARNING, logger="classifier.remote"), serve(app) as url:
        client = sdk.openai(url, "k")
        for _ in range(3):
            raw = client.chat.completions.with_raw_response.create(model="router", messages=HI)
            assert raw.parse().choices[0].message.content == "Hello from ok:weak!"
            assert raw.headers["x-routellm-model"] == "weak"
            assert raw.headers["x-routellm-reason"] == "classifier_error"
            assert raw.headers["x-routellm-label"] == "none"
            assert raw.headers["x-routellm-score"] == "none"
            assert "evil" not in str(raw.headers).lower()
        metrics = httpx.get(f"{url}/metrics").text
    assert "routellm_classifier_invalid_answers 3" in metrics
    assert "routellm_classifier_errors 3" in metrics
    lines = [r.getMessage() for r in caplog.records if r.name == "classifier.remote"]
    assert len(lines) == 1, lines  # logged once, not once per request
    assert f"{hostile_url}/hostile/{case}" in lines[0]
    assert "\r" not in lines[0]
    assert "\n" not in lines[0]
