"""StorePattern, BatchStorePatterns and DeletePattern: patterns checked,
secured, stored or deleted, and audited."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import grpc

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service import metrics
from memory_service.access.audit import AuditAction, AuditRecord
from memory_service.access.audit_privacy import sensitive_pattern_ids
from memory_service.access.denials import DENIED_CODES
from memory_service.patterns import MAX_BATCH, store_violations
from memory_service.rpc.base import Context, RpcBase, check_address
from memory_service.rpc.gate import Scope, commit_audit, guarded
from memory_service.security.identity import Action, Principal, authorize
from memory_service.security.pii import PhoneBudget
from memory_service.servicekit.errors import (
    CODE_NAMES,
    ServiceError,
    invalid_argument,
    not_found,
)
from memory_service.servicekit.paging import ITEM_OVERHEAD
from memory_service.servicekit.tracing import set_attributes, span, stage_attributes
from memory_service.sizes import RESPONSE_BUDGET, size_violation, stored_size, too_large
from memory_service.store.base import PatternConflictError
from memory_service.write_pipeline import off_loop, secure

log = logging.getLogger("attune.memory")


_DENIED_NAMES = frozenset(code.name for code in DENIED_CODES)


class PatternWriteRpcs(RpcBase):
    """Stores and deletes patterns."""

    async def _prepare(
        self,
        request: memory_pb2.StorePatternRequest,
        principal: Principal,
        field_prefix: str,
        budget: PhoneBudget | None = None,
    ) -> tuple[memory_pb2.Pattern, dict[str, int]]:
        """The pattern as it may be stored: valid, free of secrets, scrubbed, classified."""
        violations = store_violations(request, field_prefix)
        oversized = (size := stored_size(request.pattern)) > self._max_pattern_bytes
        if oversized:
            # Before anything scans it; checked again once scrubbed and embedded.
            violations.append(
                size_violation(f"{field_prefix}pattern", size, self._max_pattern_bytes)
            )
        if violations:
            reason = "too_large" if oversized and len(violations) == 1 else "invalid"
            raise metrics.rejected(invalid_argument(violations), reason)
        authorize(principal, request.namespace, Action.WRITE)
        now_us = time.time_ns() // 1000
        with span(
            "attune.write.secure", namespace=request.namespace, pattern_id=request.pattern.id
        ) as current:
            try:
                secured = await off_loop(
                    lambda: secure(
                        request.pattern, principal, self._retention, now_us, field_prefix, budget
                    )
                )
            except ServiceError as error:
                metrics.rejected(error)  # A secret, or too much text to scrub.
                raise
            stage_attributes(current, secured.stages)
            set_attributes(
                current,
                classification=common_pb2.Classification.Name(secured.pattern.classification),
                scrubbed=sum(secured.scrubbed.values()),
            )
        return secured.pattern, dict(secured.scrubbed)

    async def _commit(
        self,
        request: memory_pb2.StorePatternRequest,
        pattern: memory_pb2.Pattern,
        scrubbed: dict[str, int],
        field_prefix: str = "",
    ) -> memory_pb2.StorePatternResponse:
        # Scrubbing and the embedding can grow a pattern: refused here, before
        # it commits, rather than stored and then unreadable by every reader.
        if (size := stored_size(pattern)) > self._max_pattern_bytes:
            error = too_large(f"{field_prefix}pattern", size, self._max_pattern_bytes)
            raise metrics.rejected(error, "too_large")
        try:
            with span(
                "attune.write.store",
                namespace=request.namespace,
                pattern_id=pattern.id,
                backend=self._backend,
            ) as current:
                outcome = await self._store.put(request.namespace, pattern, request.replace)
                set_attributes(current, deduped=outcome.deduped, replaced=outcome.replaced)
        except PatternConflictError:
            # Says nothing of the existing pattern: it may be another user's SENSITIVE one.
            error = ServiceError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"a different pattern with id {pattern.id!r} already exists in namespace "
                f"{request.namespace!r}; set replace=true to overwrite one you own",
            )
            raise metrics.rejected(error, "conflict") from None
        except ServiceError as error:
            if error.code is grpc.StatusCode.FAILED_PRECONDITION:  # No key to seal it.
                metrics.rejected(error, "no_encryption_key")
            raise  # Unavailable says nothing about the pattern: not counted.
        metrics.pattern_written(pattern.classification, outcome.deduped, scrubbed)
        log.info(
            "pattern stored",
            extra={
                "namespace": request.namespace,
                "pattern_id": pattern.id,
                "classification": common_pb2.Classification.Name(pattern.classification),
                "deduped": outcome.deduped,
                "replaced": outcome.replaced,
                "scrubbed": sum(scrubbed.values()),
            },
        )
        stored = memory_pb2.Pattern()
        stored.CopyFrom(outcome.pattern)
        stored.ClearField("embedding")  # Internal to search; GetPattern returns it.
        return memory_pb2.StorePatternResponse(
            pattern=stored,
            deduped=outcome.deduped,
            replaced=outcome.replaced,
            scrubbed=[
                memory_pb2.ScrubCount(kind=kind, count=count)
                for kind, count in sorted(scrubbed.items())
            ],
        )

    async def _store_one(
        self, request: memory_pb2.StorePatternRequest, principal: Principal
    ) -> memory_pb2.StorePatternResponse:
        pattern, scrubbed = await self._prepare(request, principal, "")
        if self._semantic is not None and _embeddable(pattern):
            await self._semantic.embed_patterns([pattern])
        return await self._commit(request, pattern, scrubbed)

    # Scope.PER_ITEM: _prepare reports every invalid field at once, then authorizes.
    @guarded(AuditAction.STORE, Action.WRITE, lambda q, r: ([q.pattern.id], 0), Scope.PER_ITEM)
    async def StorePattern(
        self, request: memory_pb2.StorePatternRequest, context: Context, principal: Principal
    ) -> memory_pb2.StorePatternResponse:
        return await self._store_one(request, principal)

    @guarded(
        AuditAction.STORE,
        Action.WRITE,
        lambda q, r: ([i.pattern.id for i in q.requests], len(r.results)),
        Scope.PER_ITEM,
        itemized=True,
    )
    async def BatchStorePatterns(
        self, request: memory_pb2.BatchStorePatternsRequest, context: Context, principal: Principal
    ) -> memory_pb2.BatchStorePatternsResponse:
        if not request.requests:
            raise invalid_argument([("requests", "at least one write is required")])
        if len(request.requests) > MAX_BATCH:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"a batch holds at most {MAX_BATCH} writes; got {len(request.requests)}",
            )
        results = [
            memory_pb2.BatchStorePatternResult(index=i) for i in range(len(request.requests))
        ]
        # Each item is checked on its own (namespace rights included): one bad
        # item fails alone.
        ready: list[tuple[int, memory_pb2.Pattern, dict[str, int]]] = []
        budget = PhoneBudget()  # One for the whole batch: it bounds the request's CPU.
        for index, item in enumerate(request.requests):
            try:
                pattern, scrubbed = await self._prepare(
                    item, principal, f"requests[{index}].", budget
                )
                ready.append((index, pattern, scrubbed))
            except ServiceError as error:
                results[index].code = error.code.value[0]
                results[index].message = error.message
        embeddable = [pattern for _, pattern, _ in ready if _embeddable(pattern)]
        if self._semantic is not None and embeddable:
            await self._semantic.embed_patterns(embeddable)  # One call for the batch.
        ready = _within_response(ready, results)

        async def one(index: int, pattern: memory_pb2.Pattern, scrubbed: dict[str, int]) -> None:
            try:
                response = await self._commit(
                    request.requests[index], pattern, scrubbed, f"requests[{index}]."
                )
                results[index].response.CopyFrom(response)
            except ServiceError as error:
                results[index].code = error.code.value[0]
                results[index].message = error.message

        # Concurrent puts share commits; each item still gets its own outcome,
        # and writes to one id apply in request order.
        await asyncio.gather(*(one(*entry) for entry in ready))
        if self.audit_log is not None:
            # One record per item, in its namespace and with its own outcome:
            # a denied item is audited as denied, and each namespace's admin
            # sees the writes into it. Stored items' records are durable
            # before the reply (see guarded); failed items' go off the path.
            stored: list[AuditRecord] = []
            peer = str(context.peer() or "")
            for item, result in zip(request.requests, results, strict=True):
                record = AuditRecord(
                    principal=principal.user_id,
                    delegated_by=principal.delegated_by,
                    namespace=item.namespace,
                    action=AuditAction.STORE,
                    outcome=grpc.StatusCode.OK.name if not result.code else CODE_NAMES[result.code],
                    pattern_ids=(item.pattern.id,),
                    peer=peer,
                    private_ids=_private_item(item, result),
                )
                if not result.code:
                    stored.append(record)
                elif not self._over_denial_budget(record, result, peer):
                    self.audit_log.submit(record)
            if stored:
                await commit_audit(self.audit_log, stored)
        return memory_pb2.BatchStorePatternsResponse(results=results)

    def _over_denial_budget(
        self, record: AuditRecord, result: memory_pb2.BatchStorePatternResult, peer: str
    ) -> bool:
        """Whether a denied batch item is past the caller's refused-calls budget:
        then it answers RESOURCE_EXHAUSTED and is audited folded, as single
        calls are (see denials.py), so a batch of denials cannot flood the log."""
        if self.denials is None or record.outcome not in _DENIED_NAMES:
            return False
        if not (wait := self.denials.charge(peer, record.principal)):
            return False
        exhausted = self.denials.exhausted(peer, wait)
        result.code, result.message = exhausted.code.value[0], exhausted.message
        self.denials.fold(dataclasses.replace(record, outcome=exhausted.code.name), peer)
        return True

    # itemized: the call audits itself when it returns, to say whether the id was SENSITIVE.
    @guarded(AuditAction.DELETE, Action.DELETE, itemized=True)
    async def DeletePattern(
        self, request: memory_pb2.DeletePatternRequest, context: Context, principal: Principal
    ) -> memory_pb2.DeletePatternResponse:
        check_address(request.namespace, request.pattern_id)
        try:
            before = await self._store.get(
                request.namespace, request.pattern_id, viewer=principal.user_id
            )
        except ServiceError as error:
            if error.code is not grpc.StatusCode.DATA_LOSS:
                raise
            before = None  # Unreadable, yet deletable; its id is kept private below.
        deleted = await self._store.delete(
            request.namespace, request.pattern_id, viewer=principal.user_id
        )
        if not deleted and not request.allow_missing:
            raise not_found("pattern", f"{request.namespace}/{request.pattern_id}")
        if self.audit_log is not None:
            # Private when it was SENSITIVE, or when it appeared between the two calls.
            private = deleted and (before is None or sensitive_pattern_ids(before))
            record = AuditRecord(
                principal=principal.user_id,
                delegated_by=principal.delegated_by,
                namespace=request.namespace,
                action=AuditAction.DELETE,
                pattern_ids=(request.pattern_id,),
                result_count=int(deleted),
                peer=str(context.peer() or ""),
                private_ids=(request.pattern_id,) if private else (),
            )
            # Acknowledged only once its record is durable, as every write (see guarded).
            await commit_audit(self.audit_log, [record])
        return memory_pb2.DeletePatternResponse(deleted=deleted)


def _within_response(
    ready: list[tuple[int, memory_pb2.Pattern, dict[str, int]]],
    results: list[memory_pb2.BatchStorePatternResult],
) -> list[tuple[int, memory_pb2.Pattern, dict[str, int]]]:
    """The batch items whose stored patterns fit the response, in order; the
    rest answer RESOURCE_EXHAUSTED before anything commits (a smaller batch
    takes them). Items already refused count by their messages."""
    used = sum(len(result.message) + ITEM_OVERHEAD for result in results if result.code)
    kept = []
    for index, pattern, scrubbed in ready:
        size = stored_size(pattern) + ITEM_OVERHEAD
        if used + size > RESPONSE_BUDGET:
            # Short: up to 500 of these share the response's spare room.
            results[index].code = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
            results[index].message = "not stored: the response is full; send it in a later batch"
            metrics.write_refused("batch_full")
            used += len(results[index].message) + ITEM_OVERHEAD
            continue
        used += size
        kept.append((index, pattern, scrubbed))
    return kept


def _embeddable(pattern: memory_pb2.Pattern) -> bool:
    """Whether the pattern's text may go to the embeddings provider.

    Only after scrubbing, so a vector never encodes what was removed; and
    never a SENSITIVE pattern, whose text must not leave the service (so
    semantic search does not see SENSITIVE patterns; keyword search does).
    """
    return pattern.classification != common_pb2.CLASSIFICATION_SENSITIVE


def _private_item(
    item: memory_pb2.StorePatternRequest, result: memory_pb2.BatchStorePatternResult
) -> tuple[str, ...]:
    """The item's id if only its writer may read it back in the audit log: the
    pattern is SENSITIVE, as stored or as asked, or the write met one the
    writer holds under the id (ALREADY_EXISTS)."""
    if result.HasField("response"):
        return sensitive_pattern_ids(result.response)
    asked = item.pattern.classification == common_pb2.CLASSIFICATION_SENSITIVE
    conflict = result.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
    return (item.pattern.id,) if asked or conflict else ()
