"""The MemoryService servicer: its state, and the audit-log RPC; the pattern
write, read, search and context RPCs come from memory_service.rpc. RPCs not
listed there or here answer UNIMPLEMENTED."""

from __future__ import annotations

import grpc

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from memory_service.access.audit import AuditAction
from memory_service.access.audit_buffer import BufferedAudit
from memory_service.access.denials import DenialLimiter
from memory_service.patterns import namespace_violations
from memory_service.rpc.base import Context
from memory_service.rpc.context import ContextRpcs
from memory_service.rpc.gate import Scope, guarded
from memory_service.rpc.reads import PatternReadRpcs
from memory_service.rpc.search import PatternSearchRpcs
from memory_service.search.forms import FormCatalog, load_forms
from memory_service.security.identity import Action, Authenticator, Principal
from memory_service.semantic import Semantic
from memory_service.servicekit.errors import ServiceError, invalid_argument
from memory_service.servicekit.paging import ITEM_OVERHEAD
from memory_service.sizes import DEFAULT_MAX_PATTERN_BYTES, RESPONSE_BUDGET
from memory_service.store.base import PatternStore
from memory_service.store.guard import store_errors_as_status
from memory_service.write_pipeline import Retention


class MemoryServicer(
    ContextRpcs, PatternReadRpcs, PatternSearchRpcs, memory_pb2_grpc.MemoryServiceServicer
):
    """Serves patterns from one PatternStore."""

    def __init__(
        self,
        store: PatternStore,
        *,
        authenticator: Authenticator,
        retention: Retention,
        semantic: Semantic | None = None,
        context_ttl: tuple[float, float] = (3600.0, 86400.0),
        audit_log: BufferedAudit | None = None,
        max_pattern_bytes: int = DEFAULT_MAX_PATTERN_BYTES,
        denials: DenialLimiter | None = None,
        forms: FormCatalog | None = None,
        backend: str = "embedded",
    ) -> None:
        # Unreachable: UNAVAILABLE with its reason; a missing key: FAILED_PRECONDITION.
        self._store: PatternStore = store_errors_as_status(store)
        self.authenticator = authenticator  # Every RPC's caller is one (see guarded).
        self._retention = retention
        self._semantic = semantic
        self._context_ttl = context_ttl  # (default, maximum) seconds
        self.audit_log = audit_log  # Every RPC writes one record here (see guarded).
        # The largest pattern as stored: every one fits any response (see sizes.py).
        self._max_pattern_bytes = min(max_pattern_bytes, RESPONSE_BUDGET - ITEM_OVERHEAD)
        self.denials = denials  # The budget of refused calls per peer (see guarded).
        # The templates' forms search understands; unset: the built-in templates.
        self._forms = forms if forms is not None else load_forms(None).catalog
        self._backend = backend  # MEMORY_STORE: embedded or redis.

    @guarded(AuditAction.AUDIT, Action.ADMIN, lambda q, r: ((), len(r.events)), Scope.ANY_NAMESPACE)
    async def ListAuditEvents(
        self, request: memory_pb2.ListAuditEventsRequest, context: Context, principal: Principal
    ) -> memory_pb2.ListAuditEventsResponse:
        if request.namespace and (violations := namespace_violations(request.namespace)):
            raise invalid_argument(violations)
        if self.audit_log is None:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION, "this memory service keeps no audit log"
            )
        # An empty namespace reads every namespace: the gate let only an
        # admin of "*" through.
        records, token = await self.audit_log.read(
            request.namespace or None,
            request.filter,
            request.page_size,
            request.page_token,
            reader=principal.user_id,  # Another user's SENSITIVE pattern ids come redacted.
        )
        return memory_pb2.ListAuditEventsResponse(
            events=[record.to_proto() for record in records], next_page_token=token
        )
