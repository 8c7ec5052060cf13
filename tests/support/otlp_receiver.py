"""A real OTLP/gRPC trace receiver on 127.0.0.1, port 0: the collector stand-in.

Built on the `opentelemetry-proto` package's TraceService; it keeps every
span exported to it, flattened with its service's name, and lets a test wait
on a condition over them with a deadline (a condition variable, no polling).
Point a service at it with OTEL_EXPORTER_OTLP_ENDPOINT=`receiver.endpoint`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

Value = str | bool | int | float | bytes | list[Any] | None


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span; ids in lower-case hex ("" for no parent)."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int  # trace_pb2.Span.SpanKind
    attributes: dict[str, Value]
    status_code: int  # trace_pb2.Status.StatusCode
    status_message: str
    events: list[tuple[str, dict[str, Value]]] = field(default_factory=list)

    def texts(self) -> list[str]:
        """Every string the span carries: attributes, events, status message."""
        found = [self.name, self.status_message]
        for values in (self.attributes, *(attributes for _, attributes in self.events)):
            found += [str(value) for value in values.values()]
        found += [name for name, _ in self.events]
        return found


def _value(value: common_pb2.AnyValue) -> Value:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return [(item.key, _value(item.value)) for item in value.kvlist_value.values]
    found: Value = getattr(value, kind)
    return found


def _attributes(pairs: Any) -> dict[str, Value]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _flatten(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(_received(service, span))
    return spans


def _received(service: str, span: trace_pb2.Span) -> ReceivedSpan:
    return ReceivedSpan(
        service=service,
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        kind=span.kind,
        attributes=_attributes(span.attributes),
        status_code=span.status.code,
        status_message=span.status.message,
        events=[(event.name, _attributes(event.attributes)) for event in span.events],
    )


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(  # noqa: N802 (the proto's name)
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._receiver.add(_flatten(request))
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """Use as `with OtlpReceiver() as receiver:`; spans arrive in `spans()`."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._spans: list[ReceivedSpan] = []
        self.exports = 0
        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        add = trace_service_pb2_grpc.add_TraceServiceServicer_to_server  # Untyped.
        add(_TraceService(self), self._server)  # type: ignore[no-untyped-call]
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        """The OTEL_EXPORTER_OTLP_ENDPOINT of this receiver (plaintext)."""
        return f"http://127.0.0.1:{self.port}"

    def add(self, spans: list[ReceivedSpan]) -> None:
        """Keeps an export's spans and wakes the waiters."""
        with self._changed:
            self._spans.extend(spans)
            self.exports += 1
            self._changed.notify_all()

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far."""
        with self._changed:
            return list(self._spans)

    def wait_for(
        self, accept: Callable[[list[ReceivedSpan]], bool], timeout: float = 30.0
    ) -> list[ReceivedSpan]:
        """Blocks until `accept(spans)` holds; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not accept(self._spans):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = sorted({(span.service, span.name) for span in self._spans})
                    raise AssertionError(f"spans not received within {timeout} s; have {names}")
                self._changed.wait(left)
            return list(self._spans)

    def __enter__(self) -> OtlpReceiver:
        self._server.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.stop(None)
