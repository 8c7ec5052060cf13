"""The MemoryService RPCs. RPCs not listed here answer UNIMPLEMENTED."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from memory_service.audit_buffer import BufferedAudit
from memory_service.audit_privacy import sensitive_pattern_ids
from memory_service.audited import Scope, commit_audit, guarded
from memory_service.denials import DENIED_CODES, DenialLimiter
from memory_service.patterns import (
    MAX_BATCH,
    MAX_CONTEXT_ID,
    Violation,
    namespace_violations,
    pattern_id_violations,
    store_violations,
)
from memory_service.search.filter import FilterError, compile_filter
from memory_service.search.index import Hit, PageQuery, ReadQuery, Recency
from memory_service.search.planning import PlanError, plan_search, size_violations
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.security.audit import AuditAction, AuditRecord
from memory_service.security.identity import Action, Authenticator, Principal, authorize
from memory_service.security.pii import PhoneBudget, scrub_text
from memory_service.security.secrets import scan_text
from memory_service.semantic import Ranked, Semantic
from memory_service.servicekit.errors import ServiceError, invalid_argument, not_found
from memory_service.servicekit.paging import (
    ITEM_OVERHEAD,
    decode_token,
    encode_token,
    fit_page,
    next_offset,
)
from memory_service.sizes import (
    DEFAULT_MAX_PATTERN_BYTES,
    RESPONSE_BUDGET,
    size_violation,
    stored_size,
    too_large,
    unservable,
)
from memory_service.store.base import PatternConflictError, PatternStore
from memory_service.store.context import ContextItem, ContextOwnedError
from memory_service.store.guard import store_errors_as_status
from memory_service.write_pipeline import Retention, off_loop, secure

log = logging.getLogger("attune.memory")

Context = grpc.aio.ServicerContext[Any, Any]

_CODES = {code.value[0]: code.name for code in grpc.StatusCode}
_DENIED_NAMES = frozenset(code.name for code in DENIED_CODES)
DEFAULT_SEARCH_PAGE = 10
MAX_SEARCH_PAGE = 100
MAX_CONTEXT_VALUE = 64 * 1024
DEFAULT_LIST_PAGE = 50
# Groups one CountPatterns answer carries (tags or template ids can be many).
MAX_GROUPS = 1000
# Entries one principal may keep in one session: a bound on what a session
# holds, so a read of it stays a bounded answer.
MAX_CONTEXT_ENTRIES = 32
MAX_LIST_PAGE = 1000
DEFAULT_HALF_LIFE = 30 * 24 * 3600.0
# Fields CountPatterns can group by: scalar fields and agents' fields.
GROUPABLE = (
    "template_id",
    "success",
    "type",
    "classification",
    "runner",
    "agents.role",
    "agents.tier",
    "agents.success",
    "tags",
)


def groupable(field: str) -> bool:
    """Whether CountPatterns can group by the field."""
    return field in GROUPABLE


def parse_order_by(text: str) -> list[tuple[str, bool]]:
    """`create_time desc, id` as [(field, descending)]; ValueError if unknown."""
    order = []
    for part in (piece.strip() for piece in text.split(",") if piece.strip()):
        words = part.split()
        if (
            words[0] not in ("create_time", "id")
            or len(words) > 2
            or (len(words) == 2 and words[1].lower() not in ("asc", "desc"))
        ):
            raise ValueError(f"{part!r}: order by create_time or id, each optionally desc")
        order.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return order


def _result(hit: Hit, explain: bool) -> memory_pb2.SearchResult:
    hit.pattern.ClearField("embedding")  # Internal to search.
    result = memory_pb2.SearchResult(pattern=hit.pattern, score=hit.score)
    if explain:
        result.explanation.CopyFrom(
            memory_pb2.ScoreExplanation(
                keyword_score=hit.keyword_score,
                recency_factor=hit.recency_factor,
                matched_terms=hit.matched_terms,
                fuzzy_expansions=hit.fuzzy_expansions,
            )
        )
    return result


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


class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
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

    async def _prepare(
        self,
        request: memory_pb2.StorePatternRequest,
        principal: Principal,
        field_prefix: str,
        budget: PhoneBudget | None = None,
    ) -> tuple[memory_pb2.Pattern, dict[str, int]]:
        """The pattern as it may be stored: valid, free of secrets, scrubbed, classified."""
        violations = store_violations(request, field_prefix)
        if (size := stored_size(request.pattern)) > self._max_pattern_bytes:
            # Before anything scans it; checked again once scrubbed and embedded.
            violations.append(
                size_violation(f"{field_prefix}pattern", size, self._max_pattern_bytes)
            )
        if violations:
            raise invalid_argument(violations)
        authorize(principal, request.namespace, Action.WRITE)
        now_us = time.time_ns() // 1000
        secured = await off_loop(
            lambda: secure(
                request.pattern, principal, self._retention, now_us, field_prefix, budget
            )
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
            raise too_large(f"{field_prefix}pattern", size, self._max_pattern_bytes)
        try:
            outcome = await self._store.put(request.namespace, pattern, request.replace)
        except PatternConflictError:
            # Says nothing of the existing pattern: it may be another user's SENSITIVE one.
            raise ServiceError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"a different pattern with id {pattern.id!r} already exists in namespace "
                f"{request.namespace!r}; set replace=true to overwrite one you own",
            ) from None
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
                    outcome=grpc.StatusCode.OK.name if not result.code else _CODES[result.code],
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

    @guarded(AuditAction.GET, Action.READ, lambda q, r: ([q.pattern_id], 1))
    async def GetPattern(
        self, request: memory_pb2.GetPatternRequest, context: Context, principal: Principal
    ) -> memory_pb2.GetPatternResponse:
        _check_address(request.namespace, request.pattern_id)
        pattern = await self._store.get(
            request.namespace, request.pattern_id, viewer=principal.user_id
        )
        if pattern is None:
            raise not_found("pattern", f"{request.namespace}/{request.pattern_id}")
        if (size := pattern.ByteSize()) > RESPONSE_BUDGET - ITEM_OVERHEAD:
            raise unservable(request.namespace, request.pattern_id, size)
        return memory_pb2.GetPatternResponse(pattern=pattern)

    # itemized: the call audits itself when it returns, to say whether the id was SENSITIVE.
    @guarded(AuditAction.DELETE, Action.DELETE, itemized=True)
    async def DeletePattern(
        self, request: memory_pb2.DeletePatternRequest, context: Context, principal: Principal
    ) -> memory_pb2.DeletePatternResponse:
        _check_address(request.namespace, request.pattern_id)
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

    @guarded(
        AuditAction.SEARCH,
        Action.READ,
        lambda q, r: ([x.pattern.id for x in r.results], len(r.results)),
    )
    async def SearchPatterns(
        self, request: memory_pb2.SearchPatternsRequest, context: Context, principal: Principal
    ) -> memory_pb2.SearchPatternsResponse:
        violations = namespace_violations(request.namespace)
        if not 0 <= request.page_size <= MAX_SEARCH_PAGE:
            violations.append(("page_size", f"must be between 0 and {MAX_SEARCH_PAGE}"))
        # Sizes first: nothing reads the query or filter before they are bounded.
        violations += size_violations(request.query, request.filter)
        if violations:
            raise invalid_argument(violations)
        vocabulary = await self._store.query_vocabulary(request.namespace, viewer=principal.user_id)
        try:
            plan = plan_search(
                request.query,
                request.filter,
                not request.disable_query_understanding,
                vocabulary,
                datetime.now(UTC),
            )
        except PlanError as error:
            raise invalid_argument(error.violations) from None
        size = request.page_size or DEFAULT_SEARCH_PAGE
        token_scope = "|".join(
            (request.namespace, plan.applied_query, plan.applied_filter, str(request.mode))
        )
        offset = decode_token(request.page_token, token_scope)
        recency = None
        if request.recency.enabled:
            half_life = request.recency.half_life.ToNanoseconds() / 1e9 or DEFAULT_HALF_LIFE
            if half_life <= 0:
                raise invalid_argument([("recency.half_life", "must be positive")])
            recency = Recency(half_life)
        if request.mode not in memory_pb2.SearchMode.values():
            raise invalid_argument([("mode", f"{request.mode} is not a defined value")])
        semantic_wanted = request.mode in (
            memory_pb2.SEARCH_MODE_SEMANTIC,
            memory_pb2.SEARCH_MODE_HYBRID,
        )
        fallback = "no embeddings provider is configured; ranked by keyword"
        if semantic_wanted and self._semantic is not None:
            hybrid = request.mode == memory_pb2.SEARCH_MODE_HYBRID
            ranked = await self._semantic.rank(
                self._store, request.namespace, plan, hybrid, size, offset, principal.user_id
            )
            if isinstance(ranked, Ranked):
                results, cut = fit_page(ranked.results, _message_size, _result_id, RESPONSE_BUDGET)
                after = next_offset(offset, size, cut)
                return memory_pb2.SearchPatternsResponse(
                    results=results,
                    applied_filter=plan.applied_filter,
                    applied_query=plan.applied_query,
                    effective_mode=request.mode,
                    total_size=ranked.total,
                    next_page_token=encode_token(after, token_scope)
                    if after < ranked.total
                    else "",
                )
            fallback = ranked
        query = ReadQuery(
            request.namespace, plan.terms, plan.condition, size, offset, recency, request.explain
        )
        hits, total = await self._store.search(query, viewer=principal.user_id)
        # A page stays within what a client can receive (see sizes.py).
        results, cut = fit_page(
            [_result(hit, request.explain) for hit in hits],
            _message_size,
            _result_id,
            RESPONSE_BUDGET,
        )
        after = next_offset(offset, size, cut)
        response = memory_pb2.SearchPatternsResponse(
            results=results,
            applied_filter=plan.applied_filter,
            applied_query=plan.applied_query,
            effective_mode=memory_pb2.SEARCH_MODE_KEYWORD,
            total_size=total,
            next_page_token=encode_token(after, token_scope) if after < total else "",
        )
        if semantic_wanted:
            response.mode_fallback_reason = fallback
        return response

    @guarded(
        AuditAction.LIST, Action.READ, lambda q, r: ([p.id for p in r.patterns], len(r.patterns))
    )
    async def ListPatterns(
        self, request: memory_pb2.ListPatternsRequest, context: Context, principal: Principal
    ) -> memory_pb2.ListPatternsResponse:
        violations = namespace_violations(request.namespace)
        condition, order = None, [("create_time", True)]
        try:
            condition = compile_filter(request.filter, PATTERN_SCHEMA)
        except FilterError as error:
            violations.append(("filter", str(error)))
        try:
            order = parse_order_by(request.order_by) or order
        except ValueError as error:
            violations.append(("order_by", str(error)))
        if not 0 <= request.page_size <= MAX_LIST_PAGE:
            violations.append(("page_size", f"must be between 0 and {MAX_LIST_PAGE}"))
        if violations:
            raise invalid_argument(violations)
        size = request.page_size or DEFAULT_LIST_PAGE
        scope = "|".join((request.namespace, request.filter, request.order_by))
        offset = decode_token(request.page_token, scope)
        patterns, total = await self._store.page(
            PageQuery(request.namespace, condition, order, size, offset), viewer=principal.user_id
        )
        for pattern in patterns:
            pattern.ClearField("embedding")  # Internal to search.
        # A page stays within what a client can receive (see sizes.py).
        kept, cut = fit_page(patterns, memory_pb2.Pattern.ByteSize, _pattern_id, RESPONSE_BUDGET)
        after = next_offset(offset, size, cut)
        return memory_pb2.ListPatternsResponse(
            patterns=kept,
            total_size=total,
            next_page_token=encode_token(after, scope) if after < total else "",
        )

    @guarded(AuditAction.COUNT, Action.READ, lambda q, r: ((), r.total_count))
    async def CountPatterns(
        self, request: memory_pb2.CountPatternsRequest, context: Context, principal: Principal
    ) -> memory_pb2.CountPatternsResponse:
        violations = namespace_violations(request.namespace)
        condition = None
        try:
            condition = compile_filter(request.filter, PATTERN_SCHEMA)
        except FilterError as error:
            violations.append(("filter", str(error)))
        if request.group_by and not groupable(request.group_by):
            violations.append(
                ("group_by", f"not a field to group by; use one of {', '.join(GROUPABLE)}")
            )
        if violations:
            raise invalid_argument(violations)
        total, groups = await self._store.count(
            request.namespace, condition, request.group_by, viewer=principal.user_id
        )
        # Largest first, so the cap keeps the groups that matter most.
        groups = sorted(groups, key=lambda group: -group.count)
        return memory_pb2.CountPatternsResponse(
            total_count=total,
            truncated=len(groups) > MAX_GROUPS,
            groups=[
                memory_pb2.PatternGroup(
                    key=group.key,
                    count=group.count,
                    success_count=group.success_count,
                    success_rate=group.success_count / group.count if group.count else 0.0,
                    total_cost_usd=group.total_cost_usd,
                    mean_cost_usd=group.total_cost_usd / group.count if group.count else 0.0,
                )
                for group in groups[:MAX_GROUPS]
            ],
        )

    # --- short-term context ------------------------------------------------------------

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
            _message_size,
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


def _message_size(message: Message) -> int:
    return message.ByteSize()


def _entry_key(entry: memory_pb2.ContextEntry) -> str:
    return entry.key


def _pattern_id(pattern: memory_pb2.Pattern) -> str:
    return pattern.id


def _result_id(result: memory_pb2.SearchResult) -> str:
    return result.pattern.id


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
            used += len(results[index].message) + ITEM_OVERHEAD
            continue
        used += size
        kept.append((index, pattern, scrubbed))
    return kept


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


def _check_address(namespace: str, pattern_id: str) -> None:
    violations = namespace_violations(namespace) + pattern_id_violations(pattern_id, "pattern_id")
    if violations:
        raise invalid_argument(violations)
