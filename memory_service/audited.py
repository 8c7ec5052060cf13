"""Auditing every memory RPC: one record per call, whatever its outcome.

Until authentication is applied, every caller is recorded as "anonymous".
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from memory_service.audit_buffer import BufferedAudit
from memory_service.security.audit import AuditRecord
from memory_service.servicekit.errors import ServiceError

log = logging.getLogger("attune.memory.audit")

Request = TypeVar("Request")
Response = TypeVar("Response")
# What a call touched: (pattern ids, result count), from its request and response.
Summary = Callable[[Any, Any], tuple[Sequence[str], int]]
Handler = Callable[[Any, Request, Any], Awaitable[Response]]


def nothing(request: Any, response: Any) -> tuple[Sequence[str], int]:
    """No pattern ids and no count."""
    return (), 0


def audited(
    action: str, summary: Summary = nothing
) -> Callable[[Handler[Request, Response]], Handler[Request, Response]]:
    """Records the call in the servicer's audit log after it ends (or fails)."""

    def wrap(method: Handler[Request, Response]) -> Handler[Request, Response]:
        @functools.wraps(method)
        async def handler(self: Any, request: Request, context: Any) -> Response:
            outcome, response = "OK", None
            try:
                response = await method(self, request, context)
                return response
            except ServiceError as error:
                outcome = error.code.name
                raise
            except grpc.aio.AbortError:
                code = context.code()
                outcome = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
                raise
            except BaseException:
                outcome = "INTERNAL"
                raise
            finally:
                ids, count = summary(request, response) if response is not None else ((), 0)
                audit_log: BufferedAudit | None = getattr(self, "audit_log", None)
                if audit_log is not None:
                    audit_log.submit(
                        AuditRecord(
                            principal="anonymous",
                            namespace=str(getattr(request, "namespace", "")),
                            action=action,
                            outcome=outcome,
                            pattern_ids=tuple(ids),
                            result_count=count,
                        )
                    )

        return handler

    return wrap
