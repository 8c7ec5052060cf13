"""Auditing memory calls whose request bytes do not decode.

Such a call never reaches the gate in audited.py (there is no request to
read a namespace from), so the server's interceptor reports it here: one
DENIED record with outcome INVALID_ARGUMENT, naming the caller when its
token authenticates (the user a delegating service named, with the
service as delegated_by, as the gate would). Health and reflection calls are not audited.

Garbage is cheap to send, so these calls draw on the same per-peer budget
as refused calls (denials.py): past it they answer RESOURCE_EXHAUSTED and
are audited folded, and a flood of bytes cannot flush the audit log either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, cast

import grpc

from memory_service.access.audit import AuditAction, AuditRecord
from memory_service.access.audit_buffer import BufferedAudit
from memory_service.access.denials import DenialLimiter
from memory_service.security.identity import Authenticator, Principal, acting_principal
from memory_service.servicekit.decoding import UndecodableHook
from memory_service.servicekit.errors import ServiceError


def audit_undecodable(
    service_name: str,
    authenticator: Authenticator,
    audit_log: BufferedAudit,
    denials: DenialLimiter | None = None,
) -> UndecodableHook:
    """A hook auditing undecodable calls of `service_name` (its full proto name);
    it raises RESOURCE_EXHAUSTED for a peer over its `denials` budget."""
    prefix = f"/{service_name}/"

    def hook(method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if not method.startswith(prefix):
            return
        caller: Principal | None = None  # As the gate, "" for one it could not authenticate.
        metadata = cast(Sequence[tuple[str, str | bytes]], context.invocation_metadata() or ())
        try:
            caller = authenticator.authenticate(metadata)
            caller = acting_principal(caller, metadata)
        except ServiceError:
            pass  # A refused delegation leaves the service as the caller, as in the gate.
        principal = caller.user_id if caller is not None else ""
        peer = str(context.peer() or "")
        record = AuditRecord(
            principal=principal,
            delegated_by=caller.delegated_by if caller is not None else "",
            namespace="",
            action=AuditAction.DENIED,
            outcome=grpc.StatusCode.INVALID_ARGUMENT.name,
            peer=peer,
        )
        if denials is not None and (wait := denials.charge(peer, principal)):
            exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED.name
            denials.fold(dataclasses.replace(record, outcome=exhausted), peer)
            raise denials.exhausted(peer, wait)
        audit_log.submit(record)

    return hook
