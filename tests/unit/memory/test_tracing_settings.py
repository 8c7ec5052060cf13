"""configure_tracing's reading of the standard OTel variables: export only
with an endpoint (to a real OTLP receiver here), nothing with the SDK
disabled, the service name, resource attributes and sampler as set."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from memory_service.servicekit.tracing import (
    build_provider,
    configure_tracing,
    exporting,
    flush,
    installed_provider,
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
