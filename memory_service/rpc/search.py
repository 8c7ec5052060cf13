"""SearchPatterns: a query planned, ranked by keyword or meaning, and paged
within the response budget."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

from attune.memory.v1 import memory_pb2
from memory_service import metrics
from memory_service.access.audit import AuditAction
from memory_service.patterns import namespace_violations
from memory_service.rpc.base import Context, RpcBase, message_size
from memory_service.rpc.gate import guarded
from memory_service.search.index import Hit, ReadQuery, Recency
from memory_service.search.planning import PlanError, plan_search, size_violations
from memory_service.search.query_notes import query_reading
from memory_service.search.reading import relaxed_minimum
from memory_service.security.identity import Action, Principal
from memory_service.semantic import NO_FREE_TEXT, PROVIDER_UNAVAILABLE, Ranked
from memory_service.servicekit.errors import invalid_argument
from memory_service.servicekit.paging import decode_token, encode_token, fit_page, next_offset
from memory_service.servicekit.tracing import set_attributes, span
from memory_service.sizes import RESPONSE_BUDGET

DEFAULT_SEARCH_PAGE = 10
MAX_SEARCH_PAGE = 100
DEFAULT_HALF_LIFE = 30 * 24 * 3600.0

# The degraded-search metric's reason for each fallback.
NO_PROVIDER = "no embeddings provider is configured; ranked by keyword"
_DEGRADED_REASONS = {
    NO_PROVIDER: "no_embeddings_provider",
    PROVIDER_UNAVAILABLE: "embeddings_unavailable",
    NO_FREE_TEXT: "no_free_text",
}


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


_MODES = frozenset(memory_pb2.SearchMode.values())


class PatternSearchRpcs(RpcBase):
    """Searches patterns."""

    @guarded(
        AuditAction.SEARCH,
        Action.READ,
        lambda q, r: ([x.pattern.id for x in r.results], len(r.results)),
    )
    async def SearchPatterns(
        self, request: memory_pb2.SearchPatternsRequest, context: Context, principal: Principal
    ) -> memory_pb2.SearchPatternsResponse:
        # The namespace, mode and counts; never the query or filter.
        mode = memory_pb2.SearchMode.Name(request.mode) if request.mode in _MODES else None
        with span("attune.search", namespace=request.namespace, mode=mode) as current:
            response = await self._search(request, principal)
            set_attributes(
                current,
                effective_mode=memory_pb2.SearchMode.Name(response.effective_mode),
                results=len(response.results),
                total=response.total_size,
                backend=self._backend,
            )
            return response

    async def _search(
        self, request: memory_pb2.SearchPatternsRequest, principal: Principal
    ) -> memory_pb2.SearchPatternsResponse:
        started = time.perf_counter()
        violations = namespace_violations(request.namespace)
        if not 0 <= request.page_size <= MAX_SEARCH_PAGE:
            violations.append(("page_size", f"must be between 0 and {MAX_SEARCH_PAGE}"))
        # Sizes first: nothing reads the query or filter before they are bounded.
        violations += size_violations(request.query, request.filter)
        if violations:
            raise invalid_argument(violations)
        understand = not request.disable_query_understanding
        # Only understanding reads the data's ids: a search without it skips the store hop.
        vocabulary: tuple[list[str], list[str]] = ([], [])
        if understand and request.query.strip():
            vocabulary = await self._store.query_vocabulary(
                request.namespace, viewer=principal.user_id
            )
        try:
            plan = plan_search(
                request.query,
                request.filter,
                understand,
                vocabulary,
                datetime.now(UTC),
                forms=self._forms,
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
        fallback = NO_PROVIDER
        if semantic_wanted and self._semantic is not None:
            hybrid = request.mode == memory_pb2.SEARCH_MODE_HYBRID
            ranked = await self._semantic.rank(
                self._store, request.namespace, plan, hybrid, size, offset, principal.user_id
            )
            if isinstance(ranked, Ranked):
                results, cut = fit_page(ranked.results, message_size, _result_id, RESPONSE_BUDGET)
                after = next_offset(offset, size, cut)
                metrics.search_answered(
                    request.mode, self._backend, time.perf_counter() - started, None
                )
                return memory_pb2.SearchPatternsResponse(
                    results=results,
                    applied_filter=plan.applied_filter,
                    applied_query=plan.applied_query,
                    query_reading=query_reading(plan, plan.min_should_match, []),
                    effective_mode=request.mode,
                    total_size=ranked.total,
                    next_page_token=encode_token(after, token_scope)
                    if after < ranked.total
                    else "",
                )
            fallback = ranked
        query = ReadQuery(
            request.namespace,
            plan.terms,
            plan.condition,
            size,
            offset,
            recency,
            request.explain,
            plan.min_should_match,
        )
        hits, total = await self._store.search(query, viewer=principal.user_id)
        if (
            relaxed := relaxed_minimum(query.min_should_match, total, query.condition is not None)
        ) is not None:
            query = replace(query, min_should_match=relaxed)
            hits, total = await self._store.search(query, viewer=principal.user_id)
        # A page stays within what a client can receive (see sizes.py).
        results, cut = fit_page(
            [_result(hit, request.explain) for hit in hits],
            message_size,
            _result_id,
            RESPONSE_BUDGET,
        )
        after = next_offset(offset, size, cut)
        response = memory_pb2.SearchPatternsResponse(
            results=results,
            applied_filter=plan.applied_filter,
            applied_query=plan.applied_query,
            query_reading=query_reading(plan, query.min_should_match, hits),
            effective_mode=memory_pb2.SEARCH_MODE_KEYWORD,
            total_size=total,
            next_page_token=encode_token(after, token_scope) if after < total else "",
        )
        degraded = None
        if semantic_wanted:
            response.mode_fallback_reason = fallback
            degraded = _DEGRADED_REASONS.get(fallback, "other")
        metrics.search_answered(
            response.effective_mode, self._backend, time.perf_counter() - started, degraded
        )
        return response


def _result_id(result: memory_pb2.SearchResult) -> str:
    return result.pattern.id
