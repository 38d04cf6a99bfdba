"""The metrics `/metrics` exposes, read from the Prometheus registry of a real `Telemetry` (with
a real ledger on a throwaway SQLite file, so the ledger's metrics are there too): each family's
name as scraped, its type, its labels and its help text."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from gateway.ledger.writer import Ledger
from gateway.observe.metrics import Telemetry
from gateway.reference.source import cell
from gateway.settings.load import load_settings

SCRAPED = {"counter": "`{}_total`", "histogram": "`{}` (`_bucket`, `_sum`, `_count`)"}
"""A family's name as scraped: Prometheus appends these to counters' and histograms'."""
HOW_TO_DESCRIBE = "give it a help text (the second argument of its Counter/Gauge/Histogram)"


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """One metric family, as the reference shows it."""

    name: str
    type: str
    labels: tuple[str, ...]
    help: str


def metrics() -> list[MetricFamily]:
    """Every family in a fresh gateway's registry, in registration order."""
    with tempfile.TemporaryDirectory() as directory:
        settings = load_settings({"ROUTELLM_LEDGER": str(Path(directory) / "ledger.sqlite3")})
        ledger = Ledger.open(settings)
        try:
            return _families(Telemetry(settings, ledger).registry)
        finally:
            asyncio.run(ledger.aclose())


def _families(registry: CollectorRegistry) -> list[MetricFamily]:
    labels = {
        getattr(collector, "_name", ""): tuple(getattr(collector, "_labelnames", ()))
        for collector in getattr(registry, "_collector_to_names", {})
    }
    found = []
    for family in registry.collect():
        names = labels.get(family.name) or tuple(getattr(family, "_labelnames", ()))
        found.append(MetricFamily(family.name, family.type, names, family.documentation))
    return found


def page() -> str:
    """The metrics page."""
    lines = [
        "# Metrics",
        "",
        "Generated from a gateway's Prometheus registry when the site is built. `GET "
        "/metrics` serves them in the text format; a label's values come only from fixed "
        "sets and the configured model names (anything else is `other`). The registry "
        "belongs to one process: run one gateway process per container and let Prometheus "
        "sum the replicas ([Observability](../operations/observability.md)).",
        "",
        "| metric | type | labels | meaning |",
        "|---|---|---|---|",
    ]
    for family in metrics():
        name = SCRAPED.get(family.type, "`{}`").format(family.name)
        labels = ", ".join(f"`{label}`" for label in family.labels)
        lines.append(f"| {name} | {family.type} | {labels} | {cell(family.help)} |")
    lines += [
        "",
        "Besides these, each number in the classifier's `/health` report is a gauge "
        "`routellm_classifier_<figure>` (forward passes, cache hits and misses in-process; "
        "errors and invalid answers for a remote classifier), read at scrape time.",
    ]
    return "\n".join(lines) + "\n"
