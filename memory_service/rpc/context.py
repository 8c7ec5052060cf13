"""Set/Get/Delete/PromoteContext: a session's short-term entries, private or
shared, and their promotion to a pattern."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc
from google.rpc import error_details_pb2

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.access.audit import AuditAction
from memory_service.patterns import MAX_CONTEXT_ID, Violation, namespace_violations
from memory_service.rpc.base import Context, message_size
from memory_service.rpc.gate import guarded
from memory_service.rpc.writes import PatternWriteRpcs
from memory_service.security.identity import Action, Principal
from memory_service.security.pii import scrub_text
from memory_service.security.secrets import scan_text
from memory_service.servicekit.errors import ServiceError, invalid_argument, not_found
from memory_service.servicekit.paging import fit_page
from memory_service.sizes import RESPONSE_BUDGET
from memory_service.store.context import ContextItem, ContextOwnedError
from memory_service.write_pipeline import off_loop

MAX_CONTEXT_VALUE = 64 * 1024
# Entries one principal may keep in one session: a bound on what a session
# holds, so a read of it stays a bounded answer.
MAX_CONTEXT_ENTRIES = 32


def _session(key: bool) -> Callable[[Any], list[Violation]]:
    """A validator of a context request: namespace, session id, and the key if required."""

    def violations(request: Any) -> list[Violation]:
        found = namespace_violations(request.namespace)
        if not 1 <= len(request.session_id) <= MAX_CONTEXT_ID:
            found.append(("session_id", f"required, at most {MAX_CONTEXT_ID} characters"))
        if (key or request.key) and not 1 <= len(request.key) <= MAX_CONTEXT_ID:
            found.append(("key", f"required, at most {MAX_CONTEXT_ID} characters"))
        return found

    return violations


class ContextRpcs(PatternWriteRpcs):
    """Keeps a session's short-term context; a promotion stores as StorePattern does."""

    async def _check_session_room(
        self, request: memory_pb2.SetContextRequest, principal: Principal
    ) -> None:
        """RESOURCE_EXHAUSTED when a new key would pass the caller's entries per session."""
        items = await self._store.get_context(
            request.namespace, request.session_id, "", viewer=principal.user_id
        )
        own = {item.key for item in items if item.owner == principal.user_id}
        if request.key in own or len(own) < MAX_CONTEXT_ENTRIES:
            return
        quota = error_details_pb2.QuotaFailure(
            violations=[
                error_details_pb2.QuotaFailure.Violation(
                    subject=f"session:{request.namespace}/{request.session_id}",
                    description=f"at most {MAX_CONTEXT_ENTRIES} entries per principal and session",
                )
            ]
        )
        raise ServiceError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the session already holds {MAX_CONTEXT_ENTRIES} of your entries; "
            "delete one or let it expire",
            [quota],
        )

    @guarded(AuditAction.CONTEXT, Action.WRITE, lambda q, r: ((), 1), validate=_session(key=True))
    async def SetContext(
        self, request: memory_pb2.SetContextRequest, context: Context, principal: Principal
    ) -> memory_pb2.SetContextResponse:
        if len(request.value.encode()) > MAX_CONTEXT_VALUE:
            raise invalid_argument(
                [("value", f"longer than the limit of {MAX_CONTEXT_VALUE} bytes")]
            )
        # Short-term or not, a secret is never stored. PII stays in a private
        # entry: only its writer reads it back (their own data, for the
        # session's lifetime), and it is scrubbed if promoted. A shared entry
        # is scrubbed now, since other principals read it.
        found = await off_loop(
            lambda: [
                (field, kind)
                for field, text in (
                    ("session_id", request.session_id),
                    ("key", request.key),
                    ("value", request.value),
                )
                for kind in scan_text(text, request.key if field == "value" else "")
            ]
        )
        if found:
            raise invalid_argument(
                (field, f"contains a {kind}; secrets are never stored (value not shown)")
                for field, kind in found
            )
        default_ttl, max_ttl = self._context_ttl
        ttl = request.ttl.ToNanoseconds() / 1e9 if request.HasField("ttl") else default_ttl
        if ttl <= 0:
            raise invalid_argument([("ttl", "must be positive")])
        await self._check_session_room(request, principal)
        value, scrubbed = request.value, Counter[str]()
        if request.shared:
            value, scrubbed = await off_loop(lambda: scrub_text(request.value, request.key))
        try:
            item = await self._store.set_context(
                request.namespace,
                request.session_id,
                request.key,
                value,
                min(ttl, max_ttl),
                owner=principal.user_id,
                shared=request.shared,
            )
        except ContextOwnedError:
            raise _not_owner(request.namespace, request.session_id, request.key) from None
        return memory_pb2.SetContextResponse(
            entry=_entry(request.session_id, item),
            scrubbed=[
                memory_pb2.ScrubCount(kind=kind, count=count)
                for kind, count in sorted(scrubbed.items())
            ],
        )

    @guarded(
        AuditAction.CONTEXT,
        Action.READ,
        lambda q, r: ((), len(r.entries)),
        validate=_session(key=False),
    )
    async def GetContext(
        self, request: memory_pb2.GetContextRequest, context: Context, principal: Principal
    ) -> memory_pb2.GetContextResponse:
        items = await self._store.get_context(
            request.namespace, request.session_id, request.key, viewer=principal.user_id
        )
        # The caller's own first: others' shared entries cannot crowd them out.
        ordered = sorted(items, key=lambda item: item.owner != principal.user_id)
        entries, cut = fit_page(
            [_entry(request.session_id, item) for item in ordered],
            message_size,
            _entry_key,
            RESPONSE_BUDGET,
        )
        return memory_pb2.GetContextResponse(entries=entries, truncated=cut is not None)

    @guarded(
        AuditAction.CONTEXT,
        Action.WRITE,
        lambda q, r: ((), r.deleted_count),
        validate=_session(key=False),
    )
    async def DeleteContext(
        self, request: memory_pb2.DeleteContextRequest, context: Context, principal: Principal
    ) -> memory_pb2.DeleteContextResponse:
        deleted = await self._store.delete_context(
            request.namespace, request.session_id, request.key, owner=principal.user_id
        )
        return memory_pb2.DeleteContextResponse(deleted_count=deleted)

    @guarded(
        AuditAction.PROMOTE,
        Action.WRITE,
        lambda q, r: ([q.pattern_id], 0),
        validate=_session(key=True),
    )
    async def PromoteContext(
        self, request: memory_pb2.PromoteContextRequest, context: Context, principal: Principal
    ) -> memory_pb2.PromoteContextResponse:
        items = await self._store.get_context(
            request.namespace, request.session_id, request.key, viewer=principal.user_id
        )
        if not items:
            raise not_found(
                "context entry", f"{request.namespace}/{request.session_id}/{request.key}"
            )
        if items[0].owner != principal.user_id:  # Shared by another: seen, not theirs.
            raise _not_owner(request.namespace, request.session_id, request.key)
        pattern = memory_pb2.Pattern(
            id=request.pattern_id,
            type=memory_pb2.PATTERN_TYPE_PROMOTED_CONTEXT,
            classification=request.classification,
            content=items[0].value,
            tags=request.tags,
        )
        # The same path as StorePattern: whatever a write must pass, this passes.
        stored = await self._store_one(
            memory_pb2.StorePatternRequest(namespace=request.namespace, pattern=pattern), principal
        )
        if stored.pattern.classification == common_pb2.CLASSIFICATION_SENSITIVE:
            # Now sealed as a pattern: its plaintext must not linger in context.
            await self._store.delete_context(
                request.namespace, request.session_id, request.key, owner=principal.user_id
            )
        return memory_pb2.PromoteContextResponse(store=stored)


def _entry_key(entry: memory_pb2.ContextEntry) -> str:
    return entry.key


def _not_owner(namespace: str, session_id: str, key: str) -> ServiceError:
    # Only for a shared entry, which the caller sees anyway: no oracle.
    return ServiceError(
        grpc.StatusCode.PERMISSION_DENIED,
        f"the shared context entry {namespace}/{session_id}/{key} belongs to another "
        "principal; only its owner changes, deletes or promotes it",
    )


def _entry(session_id: str, item: ContextItem) -> memory_pb2.ContextEntry:
    entry = memory_pb2.ContextEntry(
        session_id=session_id, key=item.key, value=item.value, shared=item.shared
    )
    entry.expire_time.FromMicroseconds(item.expire_us)
    entry.update_time.FromMicroseconds(item.update_us)
    return entry
