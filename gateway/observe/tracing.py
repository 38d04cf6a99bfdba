"""OpenTelemetry tracing, off unless an exporter is configured (the standard `OTEL_*` variables).

One span per request, named and attributed by the GenAI semantic conventions
(`gen_ai.operation.name`, `gen_ai.request.model`, `gen_ai.response.model`,
`gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`) plus the routing decision
(`routellm.reason`, `routellm.label`, `routellm.score`, `routellm.threshold`), with child spans for
the classification and the upstream call. An incoming `traceparent` is continued, and the upstream
call's own context goes upstream in `traceparent`. Switched off, nothing is created (no tracer, no
span objects); a client's `traceparent` is then passed upstream unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.ledger.pricing import Usage
from gateway.ledger.writer import Api
from gateway.routing.decider import Decision
from gateway.settings.load import TraceExporter

OPERATIONS: Mapping[Api, str] = {
    "chat": "chat",
    "responses": "chat",
    "messages": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}
"""`gen_ai.operation.name` per API."""
PROPAGATED = ("traceparent", "tracestate")
_propagator = TraceContextTextMapPropagator()


def tracer_provider(exporter: TraceExporter | None) -> TracerProvider | None:
    """The SDK's provider for `exporter` (its endpoint, headers and timeouts come from the
    standard `OTEL_EXPORTER_OTLP_*` variables, read by the exporter itself); None: tracing off."""
    if exporter is None:
        return None
    chosen: SpanExporter
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        chosen = OTLPSpanExporter()
    else:
        chosen = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "routellm-gateway"}))
    provider.add_span_processor(BatchSpanProcessor(chosen))
    return provider


class Tracing:
    """What the flow calls; every method is a no-op when tracing is off."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("routellm-gateway") if provider else None

    def request(self, api: Api, model: str, incoming: Mapping[str, str]) -> Span | None:
        """The request's span, continuing the client's `traceparent` when it sent one."""
        if self._tracer is None:
            return None
        operation = OPERATIONS[api]
        carrier = {k: incoming[k] for k in PROPAGATED if k in incoming}
        return self._tracer.start_span(
            f"{operation} {model}",
            context=_propagator.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"gen_ai.operation.name": operation, "gen_ai.request.model": model},
        )

    @contextmanager
    def child(self, parent: Span | None, name: str, kind: SpanKind) -> Iterator[Span | None]:
        """A span under `parent` for one step (classification, the upstream call)."""
        if self._tracer is None or parent is None:
            yield None
            return
        context = trace.set_span_in_context(parent)
        with self._tracer.start_as_current_span(name, context=context, kind=kind) as span:
            yield span

    def upstream_headers(self, span: Span | None, incoming: Mapping[str, str]) -> dict[str, str]:
        """`traceparent` (and `tracestate`) for the upstream request: the upstream call's own
        span when tracing, else what the client sent."""
        if span is None:
            return {k: incoming[k] for k in PROPAGATED if k in incoming}
        carrier: dict[str, str] = {}
        _propagator.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    @staticmethod
    def finish(
        span: Span | None, decision: Decision | None, usage: Usage | None, status: int
    ) -> None:
        if span is None:
            return
        if decision is not None:
            span.set_attribute("gen_ai.response.model", decision.model)
            span.set_attribute("routellm.reason", decision.reason)
            if decision.label is not None:
                span.set_attribute("routellm.label", decision.label)
            if decision.score is not None:
                span.set_attribute("routellm.score", decision.score)
            if decision.threshold is not None:
                span.set_attribute("routellm.threshold", decision.threshold)
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
