"""The server interceptor: request ids, one log line per RPC, and errors.

Every RPC gets a request id (from `x-request-id`, else new) and a trace id
in the logging context: the server span's (tracing.py's interceptor runs
outside this one), else from a W3C `traceparent`, else new. The final code
goes on the server span too (`record_rpc_code`). Exceptions
become precise statuses: `ServiceError` as given, `NotImplementedError` as
UNIMPLEMENTED naming the RPC, anything else as INTERNAL without a traceback.
Requests are decoded tolerantly (see decoding.py): unknown fields are dropped,
and undecodable bytes answer INVALID_ARGUMENT, logged as a warning and
reported to the optional `on_undecodable` hook (the memory service audits them).
Given `GrpcServerMetrics`, every call is also counted: started, in flight,
handled by final status code, and its duration (see metrics.py); the code is
the one the log line reports, so both always agree.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import grpc

from memory_service.servicekit.decoding import (
    Undecodable,
    UndecodableHook,
    tolerant,
    undecodable_error,
)
from memory_service.servicekit.errors import ServiceError
from memory_service.servicekit.logging import request_id_var, trace_id_var
from memory_service.servicekit.metrics import (
    BIDI_STREAM,
    CLIENT_STREAM,
    SERVER_STREAM,
    UNARY,
    GrpcServerMetrics,
    MethodMetrics,
)
from memory_service.servicekit.tracing import current_ids, record_rpc_code

log = logging.getLogger("attune.rpc")

UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
StreamBehavior = Callable[
    [Any, grpc.aio.ServicerContext[Any, Any]], AsyncGenerator[Any, None] | Awaitable[None]
]

# Probes call these constantly; their lines go to debug.
_QUIET_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _ids_from(metadata: tuple[tuple[str, str | bytes], ...] | None) -> tuple[str, str]:
    values = {key: value for key, value in (metadata or ()) if isinstance(value, str)}
    request_id = values.get("x-request-id") or uuid.uuid4().hex
    trace_id, _ = current_ids()
    if trace_id:
        return request_id[:128], trace_id
    parts = values.get("traceparent", "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        trace_id = parts[1]
    return request_id[:128], trace_id or uuid.uuid4().hex


class _Call:
    """The bookkeeping of one RPC: its ids, its outcome, its log line."""

    def __init__(self, method: str, metadata: Any, metrics: MethodMetrics | None) -> None:
        self.method = method
        self.request_id, self.trace_id = _ids_from(metadata)
        self.code = grpc.StatusCode.OK
        self._finished = False
        self._metrics = metrics
        if metrics is not None:
            metrics.begin()
        self.started = time.perf_counter()

    def enter(self) -> None:
        request_id_var.set(self.request_id)
        trace_id_var.set(self.trace_id)

    async def fail(self, context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> None:
        """Aborts the RPC with the status the error deserves; always raises.

        The call is finished (counted, logged, its span's code set) before
        the abort: grpc.aio sends the status before abort() returns, and a
        client that has seen the status must find the call counted.
        """
        if isinstance(error, ServiceError):
            self.code = error.code
            self.finish()
            await context.abort_with_status(error.to_status())
        if isinstance(error, NotImplementedError):
            self.code = grpc.StatusCode.UNIMPLEMENTED
            self.finish()
            await context.abort(self.code, f"{self.method.lstrip('/')} is not implemented yet")
        self.code = grpc.StatusCode.INTERNAL
        log.error("unhandled error in %s", self.method, exc_info=error)
        self.finish()
        await context.abort(self.code, f"internal error (request id {self.request_id})")

    def refuse_undecodable(
        self,
        request: Undecodable,
        context: grpc.aio.ServicerContext[Any, Any],
        hook: UndecodableHook | None,
    ) -> ServiceError:
        """The error answering an undecodable request, once logged and reported."""
        # A client's mistake, not ours: a warning without a traceback.
        log.warning("undecodable request", extra={"method": self.method, "bytes": request.size})
        if hook is not None:
            try:
                hook(self.method, context)
            except ServiceError as refusal:
                return refusal  # The hook's own answer: a flood over its budget, say.
            except Exception:
                log.exception("undecodable-request hook failed in %s", self.method)
        return undecodable_error(self.method)

    def returned(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """The handler returned: OK, unless it set another code on the context."""
        code = context.code()
        if isinstance(code, grpc.StatusCode):
            self.code = code

    def finish(self) -> None:
        """Counts and logs the call once, with its final code."""
        if self._finished:
            return
        self._finished = True
        seconds = time.perf_counter() - self.started
        if self._metrics is not None:
            self._metrics.end(self.code, seconds)
        record_rpc_code(self.code)
        level = logging.DEBUG if self.method.startswith(_QUIET_PREFIXES) else logging.INFO
        log.log(
            level,
            "rpc finished",
            extra={
                "method": self.method,
                "code": self.code.name,
                "duration_ms": round(seconds * 1000, 3),
            },
        )


def _is_passthrough(error: BaseException) -> bool:
    # An abort already carries its status; a cancellation or a closed stream
    # (the client went away) must propagate untouched.
    return isinstance(error, grpc.aio.AbortError | asyncio.CancelledError | GeneratorExit)


def _code_after(
    error: BaseException, context: grpc.aio.ServicerContext[Any, Any]
) -> grpc.StatusCode:
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _wrap_unary(
    method: str,
    behavior: UnaryBehavior,
    hook: UndecodableHook | None,
    metrics: MethodMetrics | None,
) -> UnaryBehavior:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call = _Call(method, context.invocation_metadata(), metrics)
        call.enter()
        failure: BaseException | None = None
        try:
            try:
                if isinstance(request, Undecodable):
                    raise call.refuse_undecodable(request, context, hook)
                response = await behavior(request, context)
                call.returned(context)
                return response
            except BaseException as error:
                if _is_passthrough(error):
                    call.code = _code_after(error, context)
                    raise
                failure = error
            # Aborted out here, not in the except block: the abort's error
            # would carry this one as its context, and a recorded exception's
            # stacktrace would then quote this error's message.
            if failure is not None:
                await call.fail(context, failure)
        finally:
            call.finish()

    return handle


def _wrap_stream(
    method: str,
    behavior: StreamBehavior,
    hook: UndecodableHook | None,
    metrics: MethodMetrics | None,
) -> StreamBehavior:
    async def handle(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncGenerator[Any, None]:
        call = _Call(method, context.invocation_metadata(), metrics)
        call.enter()
        failure: BaseException | None = None
        try:
            try:
                if isinstance(request, Undecodable):
                    raise call.refuse_undecodable(request, context, hook)
                responses = behavior(request, context)
                if inspect.isawaitable(responses):
                    # A handler that streams with context.write() instead of yield.
                    await responses
                else:
                    try:
                        async for response in responses:
                            yield response
                    finally:
                        # Close the handler's generator now, so its cleanup runs
                        # when the client goes away rather than at collection.
                        await responses.aclose()
                call.returned(context)
            except BaseException as error:
                if _is_passthrough(error):
                    call.code = _code_after(error, context)
                    raise
                failure = error
            if failure is not None:  # Outside the except block, as in unary calls.
                await call.fail(context, failure)
        finally:
            call.finish()

    return handle


# Per handler kind: its behaviour's attribute, the handler factory, the
# wrapper, the grpc_type label, and whether its request is one message
# (decoded tolerantly). Under grpc.aio the behaviours are coroutine and
# async-generator functions, streamed requests included.
_KINDS: tuple[tuple[str, Any, Any, str, bool], ...] = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler, _wrap_unary, UNARY, True),
    ("unary_stream", grpc.unary_stream_rpc_method_handler, _wrap_stream, SERVER_STREAM, True),
    ("stream_unary", grpc.stream_unary_rpc_method_handler, _wrap_unary, CLIENT_STREAM, False),
    ("stream_stream", grpc.stream_stream_rpc_method_handler, _wrap_stream, BIDI_STREAM, False),
)


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler. Unary requests are decoded tolerantly; streamed
    requests (server reflection) keep their own decoding and are only
    logged, counted and given precise statuses.

    `on_undecodable` is told of every call whose request bytes do not decode;
    `metrics`, when given, counts every call (see metrics.py).
    """

    def __init__(
        self,
        on_undecodable: UndecodableHook | None = None,
        metrics: GrpcServerMetrics | None = None,
    ) -> None:
        self._on_undecodable = on_undecodable
        self._metrics = metrics

    def _method_metrics(self, method: str, grpc_type: str) -> MethodMetrics | None:
        return None if self._metrics is None else self._metrics.method(method, grpc_type)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler  # Unknown method: gRPC answers UNIMPLEMENTED, nothing counted.
        method, hook = handler_call_details.method, self._on_undecodable
        for kind, make, wrap, grpc_type, unary_request in _KINDS:
            behavior = getattr(handler, kind)
            if behavior is None:
                continue
            deserializer = handler.request_deserializer
            if unary_request and deserializer is not None:
                deserializer = tolerant(deserializer)
            # A request iterator is never Undecodable: those wrappers only log,
            # count, and give errors their statuses.
            wrapped = wrap(
                method,
                behavior,
                hook if unary_request else None,
                self._method_metrics(method, grpc_type),
            )
            counted: grpc.RpcMethodHandler[Any, Any] = make(
                wrapped,
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
            return counted
        return handler
