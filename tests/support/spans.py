"""The SDK's in-memory exporter on this process's tracer provider, for
in-process tests of the spans the services make.

Installed once (a process has one global provider): the provider is the one
configure_tracing installs, as in a service, with the exporter added beside
whatever the environment configured, behind the same `redacting` processor
as the services' OTLP exporter, so tests read spans as they would leave the
process. Each test clears it first.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from memory_service.servicekit.tracing import configure_tracing, installed_provider, redacting


class SpanRecorder(InMemorySpanExporter):
    """The in-memory exporter, which a test can also await a condition on.

    A server span ends after the client has its status (grpc.aio sends an
    abort's status before the handler unwinds), so a test reading it right
    after the call must wait for it: `ended` wakes on each export (from any
    thread) and rechecks, up to a deadline.
    """

    def __init__(self) -> None:
        super().__init__()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._waiters_lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        with self._waiters_lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        return result

    async def ended(
        self, condition: Callable[[list[ReadableSpan]], bool], seconds: float = 10.0
    ) -> list[ReadableSpan]:
        """The ended spans, once `condition` holds of them; fails after `seconds`."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._waiters_lock:
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(seconds):
                while not condition(got := list(self.get_finished_spans())):
                    await event.wait()
                    event.clear()
                return got
        except TimeoutError:
            names = [span.name for span in self.get_finished_spans()]
            raise AssertionError(f"spans never met the condition; ended: {names}") from None
        finally:
            with self._waiters_lock:
                self._waiters.remove(waiter)


_EXPORTER = SpanRecorder()
# The same spans before redaction: what the SDK recorded, to show a test
# reaches text that redaction must remove, and what the services themselves
# keep off spans.
_UNREDACTED = SpanRecorder()
_installed = False


def span_recorder() -> SpanRecorder:
    """The recorder of every span this process ends from now on (as exported:
    redacted), emptied; `unredacted_recorder` is emptied with it."""
    global _installed
    if not _installed:
        configure_tracing("attune-tests")
        provider = installed_provider()
        assert provider is not None, "tracing is off (OTEL_SDK_DISABLED?)"
        provider.add_span_processor(redacting(SimpleSpanProcessor(_EXPORTER)))
        provider.add_span_processor(SimpleSpanProcessor(_UNREDACTED))
        _installed = True
    _EXPORTER.clear()
    _UNREDACTED.clear()
    return _EXPORTER


def unredacted_recorder() -> SpanRecorder:
    """The spans as recorded, before redaction (installed by span_recorder)."""
    assert _installed, "call span_recorder() first"
    return _UNREDACTED


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
