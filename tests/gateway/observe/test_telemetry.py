"""Metrics with prometheus-client: exact figures, and label values no one can inflate."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.ledger.pricing import Usage
from gateway.observe.metrics import ERROR_CODES, Telemetry, error_code
from gateway.settings.load import Settings


def samples(telemetry: Telemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(telemetry.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_requests_tokens_and_costs_are_counted_exactly(
    make_settings: Callable[..., Settings],
) -> None:
    telemetry = Telemetry(make_settings())
    telemetry.inflight(1)
    assert samples(telemetry)[("routellm_inflight_requests", ())] == 1
    telemetry.request_done(
        "weak", "weak", 200, usage=Usage(1000, 200), cost=0.00027, baseline_cost=0.0045
    )
    telemetry.inflight(0)
    telemetry.request_done(
        "strong", "strong", 200, usage=Usage(10, 5), cost=None, baseline_cost=None
    )
    telemetry.request_done("evil\nmodel", "made-up", 999, usage=None, cost=None, baseline_cost=None)
    telemetry.classified(0.02)
    telemetry.classifier_batch(8)
    telemetry.first_byte("weak", 0.3)
    got = samples(telemetry)
    assert got[("routellm_inflight_requests", ())] == 0
    assert (
        got[("routellm_requests_total", (("model", "weak"), ("reason", "weak"), ("status", "200")))]
        == 1
    )
    assert (
        got[
            (
                "routellm_requests_total",
                (("model", "other"), ("reason", "other"), ("status", "other")),
            )
        ]
        == 1
    )
    assert got[("routellm_tokens_total", (("kind", "input"), ("model", "weak")))] == 1000
    assert got[("routellm_tokens_total", (("kind", "output"), ("model", "weak")))] == 200
    assert got[("routellm_cost_usd_total", (("model", "weak"),))] == pytest.approx(0.00027)
    assert got[("routellm_baseline_cost_usd_total", ())] == pytest.approx(0.0045)
    assert got[("routellm_unpriced_requests_total", (("model", "strong"),))] == 1
    assert got[("routellm_classify_seconds_count", ())] == 1
    assert got[("routellm_classifier_batch_size_sum", ())] == 8
    assert got[("routellm_upstream_first_byte_seconds_count", (("model", "weak"),))] == 1


def test_hostile_error_codes_cannot_corrupt_or_grow_the_exposition(
    make_settings: Callable[..., Settings],
) -> None:
    telemetry = Telemetry(make_settings())
    hostile = [
        'x"} 1\nroutellm_fake 9',
        "\\",
        "a\rb",
        "ünïcode",
        "",
        *[f"code-{i}" for i in range(10_000)],
    ]
    for code in hostile:
        telemetry.upstream_error("weak", code)
    telemetry.upstream_error('weak"}\n', 429)
    telemetry.upstream_error("strong", "upstream_timeout")
    families = {f.name: f for f in text_string_to_metric_families(telemetry.render().decode())}
    assert "routellm_fake" not in families
    errors = {
        (s.labels["model"], s.labels["code"]): s.value
        for s in families["routellm_upstream_errors"].samples
        if s.name == "routellm_upstream_errors_total"
    }
    assert errors == {
        ("weak", "other"): len(hostile),
        ("other", "http_429"): 1,
        ("strong", "upstream_timeout"): 1,
    }
    assert {error_code(c) for c in hostile} == {"other"}
    assert error_code(503) == "http_503"
    assert error_code(418) == "other"
    assert "other" in ERROR_CODES
