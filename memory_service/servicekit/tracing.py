"""OpenTelemetry tracing, shared by both services.

`configure_tracing` installs the SDK's tracer provider once per process. It
always records spans, so W3C `traceparent` propagation works and every log
line carries the current trace and span ids; it exports them (OTLP over gRPC,
in batches) only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set. Everything else is the SDK's own
reading of the standard variables: `OTEL_SERVICE_NAME` and
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_BSP_*`,
`OTEL_EXPORTER_OTLP_*` (headers, certificates, timeout).
`OTEL_SDK_DISABLED=true` installs nothing: no spans are made, but the API's
no-op spans keep a caller's `traceparent` current, so logs carry its ids and
the executor's calls pass it on (without one, the interceptor's made-up trace
id, see interceptors.py).

gRPC spans come from `opentelemetry-instrumentation-grpc`, whose grpc.aio
interceptors work here; health and reflection calls are left out (probes
would make a trace each). The library's servicer-context wrapper does not see
`abort_with_status` (how ServiceError answers), so the server span's final
code is set by ObservabilityInterceptor through `record_rpc_code`, from the
same code it logs and counts.

Spans of our own (`span`) carry ids only: run, template, namespace, role,
tier, counts. Never tokens, answers, queries or pattern text; a failure is
recorded by its type, never its message (messages may quote what was sent).
The gRPC instrumentation does put error texts on its spans (a client span's
status description and exception event hold the server's message, which may
quote a rejected answer or filter), so every span leaves the process through
`redacting`, which keeps an error's type and code and drops its text.

The provider is built with `shutdown_on_exit=False`: a service flushes its
queued spans when it stops gracefully (RunningService.stop), and that flush,
not an exit hook, is what exports the last spans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping

import grpc
import httpx
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import (
    aio_client_interceptors,
    aio_server_interceptor,
    filters,
)
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode

from memory_service.servicekit.errors import CODE_NAMES

log = logging.getLogger("attune.tracing")

# A proxy until a provider is installed, then that provider's tracer.
_TRACER = trace.get_tracer("attune")

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
FLUSH_TIMEOUT_MILLIS = 5_000

# Server codes that are the server's fault (OTel's gRPC conventions); a
# client's mistake (INVALID_ARGUMENT, NOT_FOUND...) leaves the span unset.
_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

# Probes and reflection: no spans.
_TRACED = filters.negate(
    filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection"))
)

_configured = False

Attribute = str | bool | int | float
TraceContext = otel_context.Context


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() == "true"


def exporting(environ: Mapping[str, str]) -> bool:
    """Whether spans leave the process: an OTLP endpoint is set and the
    exporter is not `none`."""
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def build_provider(default_service: str) -> TracerProvider | None:
    """The tracer provider the environment asks for; None when the SDK is
    disabled. `default_service` names the service unless OTEL_SERVICE_NAME or
    OTEL_RESOURCE_ATTRIBUTES does."""
    environ = os.environ
    if _flag(environ, "OTEL_SDK_DISABLED"):
        return None
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service}))
    # Sampler: OTEL_TRACES_SAMPLER. No exit hook: the graceful stop flushes.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    if exporting(environ):
        # Imported only when used: the exporter pulls in its gRPC stubs.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )

        provider.add_span_processor(redacting(BatchSpanProcessor(OTLPSpanExporter())))
    return provider


def redacting(downstream: SpanProcessor) -> SpanProcessor:
    """`downstream`, handed each ended span without error texts (see `redacted`)."""
    return _RedactingProcessor(downstream)


class _RedactingProcessor(SpanProcessor):
    def __init__(self, downstream: SpanProcessor) -> None:
        self._downstream = downstream

    def on_start(self, span: SdkSpan, parent_context: otel_context.Context | None = None) -> None:
        self._downstream.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._downstream.on_end(redacted(span))

    def shutdown(self) -> None:
        self._downstream.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._downstream.force_flush(timeout_millis)


def redacted(span: ReadableSpan) -> ReadableSpan:
    """A copy of the span without error texts: its status keeps its code, with
    the gRPC code's name or the error's type as description; an exception
    event keeps `exception.type` and `exception.escaped` only. A span with
    neither (most of them) is passed on as it is, not copied."""
    if span.status.description is None and not any(
        event.name == "exception" for event in span.events
    ):
        return span
    attributes = dict(span.attributes or {})
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=[_redacted_event(event) for event in span.events],
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code, _safe_description(span, attributes)),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


_EXCEPTION_KEPT = ("exception.type", "exception.escaped")


def _redacted_event(event: Event) -> Event:
    if event.name != "exception":
        return event
    kept = {key: value for key, value in (event.attributes or {}).items() if key in _EXCEPTION_KEPT}
    return Event(event.name, kept, event.timestamp)


def _safe_description(span: ReadableSpan, attributes: Mapping[str, object]) -> str | None:
    if span.status.status_code is not StatusCode.ERROR:
        return None
    code = attributes.get("rpc.grpc.status_code")
    if isinstance(code, int):
        named = CODE_NAMES.get(code)
        if named is not None:
            return named
    kind = attributes.get("error.type")
    return str(kind) if kind is not None else None


def configure_tracing(default_service: str) -> Callable[[], None]:
    """Installs the provider the environment asks for, once per process (a
    later call changes nothing); returns the hook that flushes queued spans,
    which a graceful stop calls (RunningService.stop does)."""
    global _configured
    if _configured:
        return flush
    _configured = True
    provider = build_provider(default_service)
    if provider is None:
        log.info("tracing off (OTEL_SDK_DISABLED)")
        return flush
    trace.set_tracer_provider(provider)
    log.info(
        "tracing on",
        extra={
            "service_name": provider.resource.attributes.get(SERVICE_NAME),
            "exporting": exporting(os.environ),
        },
    )
    return flush


def installed_provider() -> TracerProvider | None:
    """The SDK provider in use, if one is installed."""
    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


def flush() -> None:
    """Exports the spans still queued (blocking, bounded): called on graceful stop."""
    if (provider := installed_provider()) is not None:
        provider.force_flush(FLUSH_TIMEOUT_MILLIS)


def server_interceptor() -> grpc.aio.ServerInterceptor:
    """A server span per RPC (health and reflection aside), continuing the
    caller's `traceparent`."""
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(filter_=_TRACED)  # type: ignore[no-untyped-call]
    return interceptor


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """A client span per call, injecting `traceparent` into its metadata."""
    interceptors: list[grpc.aio.ClientInterceptor] = aio_client_interceptors(filter_=_TRACED)  # type: ignore[no-untyped-call]
    return interceptors


def instrument_http(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The client, its requests spanned and carrying `traceparent`."""
    HTTPXClientInstrumentor.instrument_client(client)
    return client


def record_rpc_code(code: grpc.StatusCode) -> None:
    """Sets the current (server) span's final gRPC code; ERROR for the server's faults."""
    current = trace.get_current_span()
    if not current.is_recording():
        return
    current.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_FAULTS:
        current.set_status(Status(StatusCode.ERROR, code.name))


def current_ids() -> tuple[str, str]:
    """The current span's trace and span ids in hex; empty when there is none."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


@contextlib.contextmanager
def span(name: str, **attributes: Attribute | None) -> Iterator[Span]:
    """A child span of the current one; None-valued attributes are left out.
    A failure marks it ERROR by the exception's type only."""
    with _TRACER.start_as_current_span(
        name,
        attributes={
            f"attune.{key}": value for key, value in attributes.items() if value is not None
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as error:
            _failed(current, error)
            raise


def _failed(current: Span, error: BaseException) -> None:
    """Marks the span failed by the error's type (and gRPC code, if any)."""
    kind = type(error).__name__
    code = getattr(error, "code", None)
    if isinstance(code, grpc.StatusCode):  # ServiceError: its code says more than its type.
        current.set_attribute("rpc.grpc.status_code", code.value[0])
        kind = code.name
    current.set_attribute("error.type", kind)
    current.set_status(Status(StatusCode.ERROR, kind))


class Stages:
    """Milliseconds per stage of one piece of work, for a span's attributes."""

    def __init__(self) -> None:
        self.millis: dict[str, float] = {}
        self._at = time.perf_counter()

    def mark(self, stage: str) -> None:
        """Closes the stage that ran since the last mark."""
        now = time.perf_counter()
        self.millis[stage] = round((now - self._at) * 1000, 3)
        self._at = now


def stage_attributes(current: Span, stages: Mapping[str, float]) -> None:
    """Sets `attune.<stage>_ms` per stage on the span."""
    for stage, millis in stages.items():
        current.set_attribute(f"attune.{stage}_ms", millis)


def carried() -> TraceContext:
    """The current trace context, to continue on another thread or task."""
    return otel_context.get_current()


@contextlib.contextmanager
def continued(carried_context: TraceContext) -> Iterator[None]:
    """Runs the block in a carried trace context (work handed to a thread
    that does not copy contextvars)."""
    token = otel_context.attach(carried_context)
    try:
        yield
    finally:
        otel_context.detach(token)


def set_attributes(current: Span, **attributes: Attribute | None) -> None:
    """Sets `attune.<key>` attributes, leaving None out."""
    current.set_attributes(_named(attributes))


def _named(attributes: Mapping[str, Attribute | None]) -> dict[str, Attribute]:
    return {f"attune.{key}": value for key, value in attributes.items() if value is not None}
