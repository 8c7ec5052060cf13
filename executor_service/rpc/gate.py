"""The gate every executor RPC passes: who is calling, may they, and an audit record.

The memory service's scheme (memory_service/rpc/gate.py), with the same
tokens-file format and code, and the executor's role names: a `viewer` reads
(templates, plans, runs, searches, analytics, recommendations, status), a
`runner` also runs workflows, an `admin` also reads the audit log. The
executor's runs live in its namespace (EXECUTOR_MEMORY_NAMESPACE), so every
call needs that namespace granted. The method receives the Principal.

Whatever happens, allowed or denied, one audit record names the principal,
namespace, action, outcome and the run ids touched; a streamed run is
recorded when its stream ends. Refused calls draw on the per-peer budget of
the memory service (denials.py): past it they answer RESOURCE_EXHAUSTED and
are audited folded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import grpc
from google.rpc import error_details_pb2

from memory_service.access.audit import AuditRecord
from memory_service.access.audit_buffer import BufferedAudit
from memory_service.access.denials import DENIED_CODES, DenialLimiter
from memory_service.security.identity import (
    EXECUTOR_ROLE_NAMES,
    Action,
    Authenticator,
    Principal,
    authorize,
)
from memory_service.servicekit.errors import ServiceError

ERROR_DOMAIN = "executor.attune"

Request = TypeVar("Request")
Response = TypeVar("Response")
# What a call touched: (run ids, result count), from its request and response.
Summary = Callable[[Any, Any], tuple[Sequence[str], int]]
Method = Callable[[Any, Request, Any, Principal], Awaitable[Response]]
Handler = Callable[[Any, Request, Any], Awaitable[Response]]
StreamMethod = Callable[[Any, Request, Any, Principal], AsyncIterator[Response]]
StreamHandler = Callable[[Any, Request, Any], AsyncIterator[Response]]


class Gated(Protocol):
    """What the gate needs from the servicer."""

    authenticator: Authenticator
    audit_log: BufferedAudit
    denials: DenialLimiter | None
    namespace: str


def nothing(request: Any, response: Any) -> tuple[Sequence[str], int]:
    """No run ids and no count."""
    return (), 0


class _Call:
    """One call through the gate: its principal, outcome and audit record."""

    def __init__(self, servicer: Gated, context: Any, action: str) -> None:
        self.servicer = servicer
        self.context = context
        self.action = action
        self.peer = str(context.peer() or "")
        self.principal: Principal | None = None
        self.outcome = "OK"
        self.limited = False
        self.run_ids: Sequence[str] = ()
        self.count = 0

    def admit(self, needs: Action) -> Principal:
        """The authenticated principal, if it may act in the executor's namespace."""
        servicer = self.servicer
        try:
            self.principal = servicer.authenticator.authenticate(
                self.context.invocation_metadata() or ()
            )
            authorize(self.principal, servicer.namespace, needs, EXECUTOR_ROLE_NAMES)
        except ServiceError as error:
            for detail in error.details:  # The shared identity code names the memory service.
                if isinstance(detail, error_details_pb2.ErrorInfo):
                    detail.domain = ERROR_DOMAIN
            raise
        return self.principal

    def refused(self, error: ServiceError) -> ServiceError:
        """The error to raise for a failed call: itself, or RESOURCE_EXHAUSTED
        for a refusal past the peer's denied-calls budget."""
        self.outcome = error.code.name
        denials = self.servicer.denials
        if denials is not None and error.code in DENIED_CODES:
            user = self.principal.user_id if self.principal is not None else ""
            if wait := denials.charge(self.peer, user):
                self.outcome, self.limited = grpc.StatusCode.RESOURCE_EXHAUSTED.name, True
                return denials.exhausted(self.peer, wait)
        return error

    def failed(self, error: BaseException) -> None:
        """Notes the outcome of a call that ended in anything but a ServiceError."""
        if isinstance(error, grpc.aio.AbortError):
            code = self.context.code()
            self.outcome = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
        elif isinstance(error, GeneratorExit | StopAsyncIteration | asyncio.CancelledError):
            # The caller went away (or its deadline passed): gRPC cancels the
            # handler's task, which is no fault of the executor's.
            self.outcome = grpc.StatusCode.CANCELLED.name
        else:
            self.outcome = "INTERNAL"

    @contextlib.contextmanager
    def audited(self) -> Iterator[None]:
        """Runs the call's body: its outcome is noted, and recorded at the end."""
        try:
            yield
        except ServiceError as error:
            raise self.refused(error) from None
        except BaseException as error:
            self.failed(error)
            raise
        finally:
            self.record()

    def record(self) -> None:
        """Submits the call's audit record."""
        servicer = self.servicer
        record = AuditRecord(
            principal=self.principal.user_id if self.principal is not None else "",
            namespace=servicer.namespace,
            action=self.action,
            outcome=self.outcome,
            pattern_ids=tuple(self.run_ids),
            result_count=self.count,
            peer=self.peer,
        )
        if self.limited and servicer.denials is not None:
            servicer.denials.fold(record, self.peer)  # A flood adds few records.
        else:
            servicer.audit_log.submit(record)


def gated(
    action: str, needs: Action, summary: Summary = nothing
) -> Callable[[Method[Request, Response]], Handler[Request, Response]]:
    """Authenticates, authorizes and audits calls of a unary method."""

    def wrap(method: Method[Request, Response]) -> Handler[Request, Response]:
        @functools.wraps(method)
        async def handler(self: Gated, request: Request, context: Any) -> Response:
            call = _Call(self, context, action)
            with call.audited():
                principal = call.admit(needs)
                response = await method(self, request, context, principal)
                call.run_ids, call.count = summary(request, response)
                return response

        return handler

    return wrap


def gated_stream(
    action: str, needs: Action, run_id_of: Callable[[Response], str]
) -> Callable[[StreamMethod[Request, Response]], StreamHandler[Request, Response]]:
    """Like gated, for a server-streaming method; the record is written when
    the stream ends and names the run id the first message that carries one
    gave (`run_id_of` returns "" for the others)."""

    def wrap(method: StreamMethod[Request, Response]) -> StreamHandler[Request, Response]:
        @functools.wraps(method)
        async def handler(self: Gated, request: Request, context: Any) -> AsyncIterator[Response]:
            call = _Call(self, context, action)
            with call.audited():
                principal = call.admit(needs)
                async for message in method(self, request, context, principal):
                    if not call.run_ids and (run_id := run_id_of(message)):
                        call.run_ids = (run_id,)
                    yield message

        return handler

    return wrap
