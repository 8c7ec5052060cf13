"""configure_tracing's reading of the standard OTel variables: export only
with an endpoint (to a real OTLP receiver here), nothing with the SDK
disabled, the service name, resource attributes and sampler as set; and the
redaction every exported span goes through."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Status, StatusCode

from memory_service.servicekit.tracing import (
    build_provider,
    configure_tracing,
    exporting,
    flush,
    installed_provider,
    redacting,
)
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.spans import span_recorder

OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def processors(provider: TracerProvider) -> tuple[object, ...]:
    # The SDK's private list of processors (opentelemetry-sdk 1.45, pinned).
    return tuple(provider._active_span_processor._span_processors)


def test_export_needs_an_endpoint_and_an_exporter_not_none() -> None:
    assert not exporting({})
    assert not exporting({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "})
    assert exporting({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert exporting({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"})
    assert not exporting(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_TRACES_EXPORTER": "none"}
    )


def test_without_an_endpoint_spans_are_recorded_but_go_nowhere() -> None:
    provider = build_provider("attune-memory")
    assert provider is not None
    assert processors(provider) == ()
    with provider.get_tracer("test").start_as_current_span("work") as span:
        assert span.get_span_context().is_valid  # Logs still get trace ids.
    assert provider.resource.attributes[SERVICE_NAME] == "attune-memory"


def exported_span(
    monkeypatch: pytest.MonkeyPatch, endpoint_variable: str, default_service: str
) -> tuple[ReceivedSpan, TracerProvider]:
    """One span made with the provider built while `endpoint_variable` names a
    real receiver, as the receiver got it."""
    with OtlpReceiver() as receiver:
        monkeypatch.setenv(endpoint_variable, receiver.endpoint)
        provider = build_provider(default_service)
        assert provider is not None
        with provider.get_tracer("test").start_as_current_span("work"):
            pass
        assert provider.force_flush(10_000)
        (span,) = receiver.wait_for(lambda spans: len(spans) == 1, timeout=10)
        provider.shutdown()
    return span, provider


def test_with_an_endpoint_spans_reach_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "memory-eu-1")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    span, provider = exported_span(monkeypatch, "OTEL_EXPORTER_OTLP_ENDPOINT", "attune-memory")
    assert (span.name, span.service) == ("work", "memory-eu-1")
    assert provider.resource.attributes["deployment.environment"] == "test"


def test_the_traces_endpoint_alone_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    variable = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    span, _ = exported_span(monkeypatch, variable, "attune-executor")
    assert span.service == "attune-executor"


def test_a_service_name_in_the_resource_attributes_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")
    provider = build_provider("attune-memory")
    assert provider is not None
    assert provider.resource.attributes[SERVICE_NAME] == "from-attributes"


def test_the_sampler_is_the_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    provider = build_provider("attune-memory")
    assert provider is not None
    assert provider.sampler is ALWAYS_OFF
    with provider.get_tracer("test").start_as_current_span("work") as span:
        assert not span.is_recording()


def test_a_disabled_sdk_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    assert build_provider("attune-memory") is None


def test_configure_tracing_installs_once_and_returns_the_flush() -> None:
    span_recorder()  # Installs this process's provider (configure_tracing) if not yet.
    installed = installed_provider()
    assert installed is not None
    assert configure_tracing("another-name") is flush
    assert installed_provider() is installed
    flush()  # Safe at any time, as at every graceful stop.


def redacted_spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(redacting(SimpleSpanProcessor(exporter)))
    return provider, exporter


def test_redaction_keeps_an_errors_code_and_type_but_not_its_text() -> None:
    provider, exporter = redacted_spans()
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("grpc client") as current:
        current.set_attribute("rpc.grpc.status_code", 3)
        current.set_status(Status(StatusCode.ERROR, "AioRpcError: 'hunter2' is not an option"))
        try:
            raise ValueError("'hunter2' is not an option")
        except ValueError as error:
            current.record_exception(error)
    with tracer.start_as_current_span("own") as current:
        current.set_attribute("error.type", "TimeoutError")
        current.set_status(Status(StatusCode.ERROR, "timed out reading hunter2"))
    with tracer.start_as_current_span("fine", attributes={"attune.run_id": "r1"}) as current:
        current.add_event("retry", {"attune.attempt": 2})

    client, own, fine = exporter.get_finished_spans()
    assert (client.status.status_code, client.status.description) == (
        StatusCode.ERROR,
        "INVALID_ARGUMENT",
    )
    (event,) = client.events
    assert dict(event.attributes or {}) == {
        "exception.type": "ValueError",
        "exception.escaped": "False",
    }
    assert (own.status.status_code, own.status.description) == (StatusCode.ERROR, "TimeoutError")
    # What carries no error text passes untouched.
    assert fine.status.status_code == StatusCode.UNSET
    assert dict(fine.attributes or {}) == {"attune.run_id": "r1"}
    assert [(e.name, dict(e.attributes or {})) for e in fine.events] == [
        ("retry", {"attune.attempt": 2})
    ]
    assert fine.context is not None
    assert fine.end_time is not None
    provider.shutdown()


def test_the_built_provider_leaves_flushing_to_the_graceful_stop() -> None:
    # No atexit hook: RunningService.stop flushes, so what a stop did not
    # flush is not exported behind its back (and a test of that flush can fail).
    provider = build_provider("attune-memory")
    assert provider is not None
    assert provider._atexit_handler is None  # The SDK's private hook (sdk 1.45, pinned).
    provider.shutdown()
