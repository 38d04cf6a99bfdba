"""Tracing through the real app: spans captured with the SDK's in-memory exporter carry the
GenAI attributes and the decision, continue the client's `traceparent`, and pass the upstream
call's context upstream; with tracing off nothing is created and the client's context passes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from classifier.local import LocalClassifier
from classifier.settings import SettingsError
from gateway.app import create_app
from gateway.settings.load import Settings, load_settings
from tests.gateway.fake_upstream import FakeUpstream
from tests.servers import serve

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
HI = [{"role": "user", "content": "hello there"}]


@contextmanager
def traced(
    settings: Settings, classifier: LocalClassifier
) -> Iterator[tuple[str, InMemorySpanExporter]]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with serve(create_app(settings, classifier=classifier, tracer_provider=provider)) as url:
        yield url, spans


def by_name(spans: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans.get_finished_spans()}


@pytest.mark.parametrize("stream", [False, True])
def test_a_routed_request_is_one_span_with_classification_and_upstream_children(
    make_settings: Callable[..., Settings],
    classifiers: dict[int, LocalClassifier],
    upstream: tuple[FakeUpstream, str],
    stream: bool,
) -> None:
    fake, _ = upstream
    with traced(make_settings(), classifiers[2]) as (url, spans):
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "router", "messages": HI, "stream": stream},
            headers={"traceparent": TRACEPARENT},
        )
        response.read()
    assert response.status_code == 200
    got = by_name(spans)
    request, classify, call = got["chat router"], got["classify"], got["chat ok:weak"]
    assert request.kind == SpanKind.SERVER
    assert f"{request.context.trace_id:032x}" == TRACE_ID  # the client's trace, continued
    assert request.parent is not None
    assert f"{request.parent.span_id:016x}" == "00f067aa0ba902b7"
    attributes = dict(request.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "router"
    assert attributes["gen_ai.response.model"] == "weak"
    assert attributes["gen_ai.usage.input_tokens"] == 3
    assert attributes["gen_ai.usage.output_tokens"] == 4
    assert attributes["routellm.reason"] == "weak"
    assert attributes["routellm.label"] == "LABEL_2"
    assert 0.0 <= float(attributes["routellm.score"]) < 0.5  # type: ignore[arg-type]
    assert attributes["routellm.threshold"] == 0.5
    for child in (classify, call):
        assert child.parent is not None
        assert child.parent.span_id == request.context.span_id
    assert call.kind == SpanKind.CLIENT
    sent = fake.history[-1].headers["traceparent"]
    assert sent == f"00-{TRACE_ID}-{call.context.span_id:016x}-01"  # the upstream call's span


def test_the_messages_api_is_traced_too(
    classifiers: dict[int, LocalClassifier],
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
) -> None:
    _, up = upstream
    config = tmp_path / "claude.yaml"
    doc = {
        "upstreams": {"claude": {"base_url": f"{up}/v1", "kind": "anthropic"}},
        "models": {"claude": {"upstream": "claude", "model": "ok:claude"}},
        "routing": {"strong": "claude", "weak": "claude"},
    }
    config.write_text(yaml.safe_dump(doc))
    with traced(load_settings({}, str(config)), classifiers[0]) as (url, spans):
        body = {"model": "claude", "max_tokens": 8, "messages": HI}
        assert httpx.post(f"{url}/v1/messages", json=body).status_code == 200
    attributes = dict(by_name(spans)["chat claude"].attributes or {})
    assert attributes["gen_ai.response.model"] == "claude"
    assert attributes["routellm.reason"] == "direct"
    assert attributes["gen_ai.usage.output_tokens"] == 4


def test_without_an_exporter_nothing_is_traced_and_the_clients_context_passes(
    make_settings: Callable[..., Settings],
    classifiers: dict[int, LocalClassifier],
    upstream: tuple[FakeUpstream, str],
) -> None:
    fake, _ = upstream
    settings = make_settings()
    assert settings.tracing is None
    with serve(create_app(settings, classifier=classifiers[2])) as url:
        httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "weak", "messages": HI},
            headers={"traceparent": TRACEPARENT},
        )
    assert fake.history[-1].headers["traceparent"] == TRACEPARENT


@pytest.mark.parametrize(
    ("env", "exporter"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, None),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, None),
    ],
)
def test_tracing_follows_the_standard_variables(env: dict[str, str], exporter: str | None) -> None:
    assert load_settings(env).tracing == exporter


def test_an_unsupported_exporter_stops_start_up() -> None:
    with pytest.raises(SettingsError, match="OTEL_TRACES_EXPORTER='zipkin'"):
        load_settings({"OTEL_TRACES_EXPORTER": "zipkin"})
