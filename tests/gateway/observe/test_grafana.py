"""`config/grafana-dashboard.json`: a valid dashboard over metrics that `Telemetry` exposes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gateway.ledger.pricing import Usage
from gateway.ledger.writer import Ledger
from gateway.observe.metrics import Telemetry
from gateway.settings.load import Settings

DASHBOARD = Path(__file__).parents[3] / "config" / "grafana-dashboard.json"


async def test_every_queried_metric_is_exposed(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    doc = json.loads(DASHBOARD.read_text())
    variables = doc["templating"]["list"]
    assert {"name": "datasource", "type": "datasource", "query": "prometheus"}.items() <= variables[
        0
    ].items()
    settings = make_settings(ROUTELLM_LEDGER=str(tmp_path / "l.db"))
    ledger = Ledger.open(settings)
    telemetry = Telemetry(settings, ledger)
    # One of each event, so that every family has samples.
    telemetry.request_done("weak", "weak", 200, usage=Usage(1, 1), cost=1e-6, baseline_cost=2e-6)
    telemetry.request_done("weak", "weak", 200, usage=None, cost=None, baseline_cost=None)
    telemetry.classified(0.1)
    telemetry.classifier_batch(2)
    telemetry.first_byte("weak", 0.1)
    telemetry.upstream_error("weak", 500)
    exposed = {
        s.name
        for family in text_string_to_metric_families(telemetry.render().decode())
        for s in family.samples
    }
    await ledger.aclose()
    queried = set()
    for panel in doc["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        for target in panel["targets"]:
            names = set(re.findall(r"\b(routellm_[a-z_]+)\b", target["expr"]))
            assert names, target["expr"]
            queried |= names
    assert queried - exposed == set()
    assert {
        "routellm_cost_usd_total",
        "routellm_baseline_cost_usd_total",
        "routellm_requests_total",
    } <= queried
