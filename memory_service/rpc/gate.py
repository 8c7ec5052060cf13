"""The gate every memory RPC passes: who is calling, may they, and an audit record.

`guarded` wraps a servicer method. Before the method runs it authenticates
the caller (UNAUTHENTICATED), resolves a delegating service's call to the
user it acts for (identity.acting_principal), checks the request's namespace is well formed
(INVALID_ARGUMENT) and authorizes the action there (PERMISSION_DENIED); the
method then receives the Principal. Whatever happens, allowed or denied, one
audit record names the principal, namespace, action and outcome; a write's
record is durable before it is acknowledged. Refused calls draw on a budget
per peer (see denials.py): past it they answer RESOURCE_EXHAUSTED and are
audited folded.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import Any, Protocol, TypeVar

import grpc

from memory_service.access.audit import AuditRecord
from memory_service.access.audit_buffer import BufferedAudit
from memory_service.access.audit_privacy import sensitive_pattern_ids
from memory_service.access.denials import DENIED_CODES, DenialLimiter
from memory_service.patterns import Violation, namespace_violations
from memory_service.security.identity import (
    Action,
    Authenticator,
    Principal,
    acting_principal,
    authorize,
    authorize_all_namespaces,
)
from memory_service.servicekit.errors import ServiceError, invalid_argument, unavailable

Request = TypeVar("Request")
Response = TypeVar("Response")
# What a call touched: (pattern ids, result count), from its request and response.
Summary = Callable[[Any, Any], tuple[Sequence[str], int]]
Method = Callable[[Any, Request, Any, Principal], Awaitable[Response]]
Handler = Callable[[Any, Request, Any], Awaitable[Response]]
Validator = Callable[[Any], list[Violation]]


class Scope(Enum):
    """Where an RPC acts, and so what the gate checks before the method runs."""

    NAMESPACE = "namespace"  # request.namespace, required
    ANY_NAMESPACE = "any"  # request.namespace, or every namespace when empty
    PER_ITEM = "per-item"  # the method authorizes each item itself


class Gated(Protocol):
    """What the gate needs from the servicer."""

    authenticator: Authenticator
    audit_log: BufferedAudit | None
    denials: DenialLimiter | None


# Calls that change stored data: their record is durable before the reply.
MUTATING = frozenset({Action.WRITE, Action.DELETE})


async def commit_audit(audit_log: BufferedAudit, records: Sequence[AuditRecord]) -> None:
    """Appends the records of acknowledged writes durably; UNAVAILABLE if the log failed.

    The write itself has happened: writes are idempotent on their ids, so
    the caller may retry, and the retry is audited.
    """
    try:
        await audit_log.commit(records)
    except (OSError, RuntimeError):
        raise unavailable(
            "the write was applied but its audit record could not be stored; retry it"
        ) from None


def nothing(request: Any, response: Any) -> tuple[Sequence[str], int]:
    """No pattern ids and no count."""
    return (), 0


def namespace_only(request: Any) -> list[Violation]:
    """The request's namespace problems."""
    return namespace_violations(str(getattr(request, "namespace", "")))


def _admit(
    principal: Principal, request: Any, needs: Action, scope: Scope, validate: Validator
) -> None:
    namespace = str(getattr(request, "namespace", ""))
    if scope is Scope.PER_ITEM:
        return
    if scope is Scope.ANY_NAMESPACE and not namespace:
        authorize_all_namespaces(principal, needs)
        return
    # Every field problem at once, before rights: a malformed request is
    # INVALID_ARGUMENT for everybody.
    if violations := validate(request):
        raise invalid_argument(violations)
    authorize(principal, namespace, needs)


def guarded(
    action: str,
    needs: Action,
    summary: Summary = nothing,
    scope: Scope = Scope.NAMESPACE,
    validate: Validator = namespace_only,
    itemized: bool = False,
) -> Callable[[Method[Request, Response]], Handler[Request, Response]]:
    """Authenticates, validates (`validate`), authorizes and audits calls of the method.

    `itemized`: a call that returns audits each of its items itself (a batch
    spans namespaces, and each item has its own outcome); the gate then
    audits only calls that fail as a whole.
    """

    def wrap(method: Method[Request, Response]) -> Handler[Request, Response]:
        @functools.wraps(method)
        async def handler(self: Gated, request: Request, context: Any) -> Response:
            outcome, response, principal = "OK", None, None
            peer, limited = str(context.peer() or ""), False
            try:
                metadata = context.invocation_metadata() or ()
                principal = self.authenticator.authenticate(metadata)
                # From here on the call is the named user's, within the service's
                # rights; refused, it stays the service's (budget and audit).
                principal = acting_principal(principal, metadata)
                _admit(principal, request, needs, scope, validate)
                response = await method(self, request, context, principal)
                return response
            except ServiceError as error:
                outcome = error.code.name
                if self.denials is not None and error.code in DENIED_CODES:
                    user = principal.user_id if principal is not None else ""
                    if wait := self.denials.charge(peer, user):
                        outcome, limited = grpc.StatusCode.RESOURCE_EXHAUSTED.name, True
                        raise self.denials.exhausted(peer, wait) from None
                raise
            except grpc.aio.AbortError:
                code = context.code()
                outcome = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
                raise
            except asyncio.CancelledError:
                # The caller went away (or its deadline passed): gRPC cancels
                # the handler's task, which is no fault of the service's.
                outcome = grpc.StatusCode.CANCELLED.name
                raise
            except BaseException:
                outcome = "INTERNAL"
                raise
            finally:
                ids, count = summary(request, response) if response is not None else ((), 0)
                if self.audit_log is not None and not (itemized and response is not None):
                    record = AuditRecord(
                        principal=principal.user_id if principal is not None else "",
                        namespace=str(getattr(request, "namespace", "")),
                        action=action,
                        outcome=outcome,
                        pattern_ids=tuple(ids),
                        result_count=count,
                        peer=peer,
                        delegated_by=principal.delegated_by if principal is not None else "",
                        # Only the principal reads back ids of SENSITIVE patterns.
                        private_ids=sensitive_pattern_ids(response),
                    )
                    if limited and self.denials is not None:
                        self.denials.fold(record, peer)  # A flood adds few records.
                    elif outcome == "OK" and needs in MUTATING:
                        # Acknowledged only once its record is durable.
                        await commit_audit(self.audit_log, [record])
                    else:
                        self.audit_log.submit(record)

        return handler

    return wrap
