"""The gateway's Prometheus metrics, on a registry the app owns (never the process-global one).

    telemetry = Telemetry(settings, ledger)      # in the lifespan; the flow owns it
    telemetry.inflight(count)                    # when a request starts or ends
    telemetry.classified(seconds)                # after the classifier answered
    telemetry.first_byte(model, seconds)         # when the upstream's first byte arrived
    telemetry.upstream_error(model, code)        # each failed upstream attempt
    telemetry.request_done(model, reason, status, usage=u, cost=c, baseline_cost=b)
    telemetry.render(classifier=report, breakers=open_breakers)   # the body of GET /metrics

Every label value comes from a fixed set or the configured model names; anything else is
`other`, so neither a client nor a hostile upstream can grow the series or break the text.
One registry is one process: run one gateway process per container and let Prometheus sum the
replicas (the Grafana dashboard in `config/` does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.ledger.pricing import Usage
from gateway.routing.decider import Reason
from gateway.settings.load import Settings

if TYPE_CHECKING:
    from gateway.ledger.writer import Ledger

__all__ = ["CONTENT_TYPE", "ErrorCode", "Telemetry"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"
ROUTER_NAMES = ("router",)

ErrorCode = Literal[
    "timeout",
    "connect_error",
    "bad_response",
    "stream_error",
    "rate_limited",
    "http_400",
    "http_401",
    "http_403",
    "http_404",
    "http_408",
    "http_409",
    "http_413",
    "http_422",
    "http_429",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "http_529",
    "upstream_error",
    "upstream_timeout",
    "other",
]
REASONS: frozenset[str] = frozenset(get_args(Reason))
ERROR_CODES: frozenset[str] = frozenset(get_args(ErrorCode))
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
QUALITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
WEIGHT_BUCKETS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def error_code(code: str | int | None) -> ErrorCode:
    """An upstream error (an HTTP status or a code string) as a label from `ErrorCode`."""
    if isinstance(code, int):
        code = f"http_{code}"
    if code in ERROR_CODES:
        return code  # type: ignore[return-value]  # membership checked against the Literal
    return "other"


class Telemetry:
    """The metrics a gateway process exposes; the flow calls one method per event."""

    def follow(self, settings: Settings) -> None:
        """Label by the models `settings` serves (at start, and after each reload); any other
        name is `other`, so labels stay few."""
        self._models = frozenset(settings.models) | frozenset(ROUTER_NAMES)

    def __init__(self, settings: Settings, ledger: Ledger | None = None) -> None:
        self.registry = CollectorRegistry()
        self.follow(settings)
        r = self.registry
        self._requests = Counter(
            "routellm_requests",
            "Requests answered, by the model that answered, the decision's reason and status.",
            ["model", "reason", "status"],
            registry=r,
        )
        self._tokens = Counter(
            "routellm_tokens", "Tokens the upstreams reported.", ["model", "kind"], registry=r
        )
        self._cost = Counter(
            "routellm_cost_usd",
            "Spend in USD of requests with a known cost.",
            ["model"],
            registry=r,
        )
        self._baseline = Counter(
            "routellm_baseline_cost_usd",
            "What the same tokens would have cost on the baseline model, in USD.",
            registry=r,
        )
        self._unpriced = Counter(
            "routellm_unpriced_requests",
            "Answered requests whose cost is unknown (no price, or no usage reported).",
            ["model"],
            registry=r,
        )
        self._classify = Histogram(
            "routellm_classify_seconds",
            "Time spent waiting for the classifier.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._batch = Histogram(
            "routellm_classifier_batch_size",
            "Texts per classifier forward pass.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self._first_byte = Histogram(
            "routellm_upstream_first_byte_seconds",
            "Time from sending a request upstream to its first byte.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._errors = Counter(
            "routellm_upstream_errors",
            "Upstream failures (including ones a fallback recovered), by model and code.",
            ["model", "code"],
            registry=r,
        )
        self._quality = Histogram(
            "routellm_predicted_quality",
            "Many-model routers: each candidate model's predicted quality, per decision.",
            ["model"],
            buckets=QUALITY_BUCKETS,
            registry=r,
        )
        self._cost_weight = Histogram(
            "routellm_cost_weight",
            "Many-model routers: the cost weight each decision used.",
            buckets=WEIGHT_BUCKETS,
            registry=r,
        )
        self._inflight_gauge = Gauge(
            "routellm_inflight_requests", "Requests in flight.", registry=r
        )
        if ledger is not None:
            r.register(_LedgerCollector(ledger))
        self._snapshot = _Snapshot()
        r.register(self._snapshot)

    def model_label(self, model: str) -> str:
        """`model` when the gateway serves it, else `other`."""
        return model if model in self._models else OTHER

    def inflight(self, count: int) -> None:
        """Requests in flight now (the flow keeps the count: it also caps it)."""
        self._inflight_gauge.set(count)

    def request_done(
        self,
        model: str,
        reason: str,
        status: int,
        *,
        usage: Usage | None,
        cost: float | None,
        baseline_cost: float | None,
    ) -> None:
        """One request finished (answered or failed): count it, its tokens and its cost."""
        label = self.model_label(model)
        reason_label = reason if reason in REASONS else OTHER
        status_label = str(status) if 100 <= status <= 599 else OTHER
        self._requests.labels(label, reason_label, status_label).inc()
        if usage is not None:
            self._tokens.labels(label, "input").inc(usage.input_tokens)
            self._tokens.labels(label, "output").inc(usage.output_tokens)
        if cost is not None:
            self._cost.labels(label).inc(cost)
        if baseline_cost is not None:
            self._baseline.inc(baseline_cost)
        if status < 400 and (cost is None or baseline_cost is None):
            self._unpriced.labels(label).inc()

    def classified(self, seconds: float) -> None:
        self._classify.observe(seconds)

    def weighed(self, cost_weight: float, quality: Mapping[str, float]) -> None:
        """A many-model decision: its weight and every candidate's predicted quality."""
        self._cost_weight.observe(cost_weight)
        for model, value in quality.items():
            self._quality.labels(self.model_label(model)).observe(value)

    def classifier_batch(self, size: int) -> None:
        self._batch.observe(size)

    def first_byte(self, model: str, seconds: float) -> None:
        self._first_byte.labels(self.model_label(model)).observe(seconds)

    def upstream_error(self, model: str, code: str | int | None) -> None:
        self._errors.labels(self.model_label(model), error_code(code)).inc()

    def render(
        self,
        *,
        classifier: Mapping[str, object] | None = None,
        breakers: Mapping[str, list[str]] | None = None,
        conversation_failures: int = 0,
    ) -> bytes:
        """The Prometheus text exposition (serve it with `CONTENT_TYPE`), with the classifier's
        numeric health figures and the open breakers read at scrape time."""
        self._snapshot.classifier = dict(classifier or {})
        self._snapshot.breakers = dict(breakers or {})
        self._snapshot.conversation_failures = conversation_failures
        return generate_latest(self.registry)


class _LedgerCollector(Collector):
    """Reads the ledger's counters at scrape time."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def collect(self) -> Iterable[Metric]:
        stats = self._ledger.stats()
        yield CounterMetricFamily(
            "routellm_ledger_rows_written", "Ledger rows written.", value=stats.written
        )
        yield CounterMetricFamily(
            "routellm_ledger_rows_dropped",
            "Ledger rows lost: the buffer was full while the store could not be written.",
            value=stats.dropped,
        )
        yield CounterMetricFamily(
            "routellm_ledger_write_failures", "Failed ledger write attempts.", value=stats.failures
        )
        yield GaugeMetricFamily(
            "routellm_ledger_rows_buffered", "Ledger rows waiting to be written.", stats.buffered
        )


class _Snapshot(Collector):
    """What `/metrics` reads fresh at each scrape: the classifier's health figures (names from
    this project's classifiers, numbers only), the open circuit breakers (configured names) and
    the conversation store's failures."""

    def __init__(self) -> None:
        self.classifier: dict[str, object] = {}
        self.breakers: dict[str, list[str]] = {}
        self.conversation_failures = 0

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "routellm_conversation_store_failures",
            "Routed requests decided per turn because the conversation store failed.",
            value=self.conversation_failures,
        )
        for key, value in sorted(self.classifier.items()):
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if key.isidentifier():
                yield GaugeMetricFamily(
                    f"routellm_classifier_{key}", f"Classifier health: {key}.", value
                )
        open_now = GaugeMetricFamily(
            "routellm_breaker_open",
            "Circuit breakers open now: scope host (an upstream) or deployment (upstream/model).",
            labels=["scope", "name"],
        )
        for scope, names in (("host", "hosts"), ("deployment", "deployments")):
            for name in self.breakers.get(names, []):
                open_now.add_metric([scope, name], 1)
        yield open_now
