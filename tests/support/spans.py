"""The SDK's in-memory exporter on this process's tracer provider, for
in-process tests of the spans the services make.

Installed once (a process has one global provider): the provider is the one
configure_tracing installs, as in a service, with the exporter added beside
whatever the environment configured. Each test clears it first.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from memory_service.servicekit.tracing import configure_tracing, installed_provider

_EXPORTER = InMemorySpanExporter()
_installed = False


def span_recorder() -> InMemorySpanExporter:
    """The recorder of every span this process ends from now on, emptied."""
    global _installed
    if not _installed:
        configure_tracing("attune-tests")
        provider = installed_provider()
        assert provider is not None, "tracing is off (OTEL_SDK_DISABLED?)"
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        _installed = True
    _EXPORTER.clear()
    return _EXPORTER


def trace_of(span: ReadableSpan) -> str:
    """The span's trace id in hex."""
    assert span.context is not None
    return format_trace_id(span.context.trace_id)


def span_id(span: ReadableSpan) -> str:
    """The span's id in hex."""
    assert span.context is not None
    return format_span_id(span.context.span_id)


def parent_id(span: ReadableSpan) -> str:
    """The parent's span id in hex; "" for a root."""
    return format_span_id(span.parent.span_id) if span.parent is not None else ""


def children(spans: list[ReadableSpan], parent: ReadableSpan, name: str) -> list[ReadableSpan]:
    """The spans named `name` whose parent is `parent`."""
    return [s for s in spans if parent_id(s) == span_id(parent) and s.name == name]


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    """The spans named `name`."""
    return [s for s in spans if s.name == name]


def texts(span: ReadableSpan) -> list[str]:
    """Every string a span carries: name, attributes, events, status."""
    found = [span.name, span.status.description or ""]
    found += [str(value) for value in (span.attributes or {}).values()]
    for event in span.events:
        found.append(event.name)
        found += [str(value) for value in (event.attributes or {}).values()]
    return found
