"""The server interceptor: request ids, one log line per RPC, and errors.

Every RPC gets a request id (from `x-request-id`, else new) and a trace id
(from a W3C `traceparent`, else new) in the logging context. Exceptions
become precise statuses: `ServiceError` as given, `NotImplementedError` as
UNIMPLEMENTED naming the RPC, anything else as INTERNAL without a traceback.
Requests are decoded tolerantly (see decoding.py): unknown fields are dropped,
and undecodable bytes answer INVALID_ARGUMENT, logged as a warning and
reported to the optional `on_undecodable` hook (the memory service audits them).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, cast

import grpc

from memory_service.servicekit.decoding import (
    Undecodable,
    UndecodableHook,
    tolerant,
    undecodable_error,
)
from memory_service.servicekit.errors import ServiceError
from memory_service.servicekit.logging import request_id_var, trace_id_var

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
    trace_id = ""
    parts = values.get("traceparent", "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        trace_id = parts[1]
    return request_id[:128], trace_id or uuid.uuid4().hex


class _Call:
    """The bookkeeping of one RPC: its ids, its outcome, its log line."""

    def __init__(self, method: str, metadata: Any) -> None:
        self.method = method
        self.request_id, self.trace_id = _ids_from(metadata)
        self.code = grpc.StatusCode.OK
        self.started = time.perf_counter()

    def enter(self) -> None:
        request_id_var.set(self.request_id)
        trace_id_var.set(self.trace_id)

    async def fail(self, context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> None:
        """Aborts the RPC with the status the error deserves; always raises."""
        if isinstance(error, ServiceError):
            self.code = error.code
            await context.abort_with_status(error.to_status())
        if isinstance(error, NotImplementedError):
            self.code = grpc.StatusCode.UNIMPLEMENTED
            await context.abort(self.code, f"{self.method.lstrip('/')} is not implemented yet")
        self.code = grpc.StatusCode.INTERNAL
        log.error("unhandled error in %s", self.method, exc_info=error)
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

    def finish(self) -> None:
        level = logging.DEBUG if self.method.startswith(_QUIET_PREFIXES) else logging.INFO
        log.log(
            level,
            "rpc finished",
            extra={
                "method": self.method,
                "code": self.code.name,
                "duration_ms": round((time.perf_counter() - self.started) * 1000, 3),
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
    method: str, behavior: UnaryBehavior, hook: UndecodableHook | None
) -> UnaryBehavior:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call = _Call(method, context.invocation_metadata())
        call.enter()
        try:
            if isinstance(request, Undecodable):
                raise call.refuse_undecodable(request, context, hook)
            return await behavior(request, context)
        except BaseException as error:
            if _is_passthrough(error):
                call.code = _code_after(error, context)
                raise
            await call.fail(context, error)
        finally:
            call.finish()

    return handle


def _wrap_stream(
    method: str, behavior: StreamBehavior, hook: UndecodableHook | None
) -> StreamBehavior:
    async def handle(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncGenerator[Any, None]:
        call = _Call(method, context.invocation_metadata())
        call.enter()
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
        except BaseException as error:
            if _is_passthrough(error):
                call.code = _code_after(error, context)
                raise
            await call.fail(context, error)
        finally:
            call.finish()

    return handle


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Wraps unary-unary and unary-stream handlers; passes others through.

    `on_undecodable` is told of every call whose request bytes do not decode.
    """

    def __init__(self, on_undecodable: UndecodableHook | None = None) -> None:
        self._on_undecodable = on_undecodable

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method, hook = handler_call_details.method, self._on_undecodable
        deserializer = handler.request_deserializer
        if deserializer is not None:
            deserializer = tolerant(deserializer)
        # Under grpc.aio the behaviours are coroutine and async-generator functions.
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(method, cast(UnaryBehavior, handler.unary_unary), hook),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(method, cast(StreamBehavior, handler.unary_stream), hook),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
