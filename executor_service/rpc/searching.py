"""SearchRuns: the memory service searched as the caller, else (or also) the
local run files, and the hits a response carries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

import grpc

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service import metrics
from executor_service.memory.breaker import BreakerOpenError
from executor_service.memory.client import CREDENTIAL_CODES, UNREACHABLE_CODES
from executor_service.rpc.base import MAX_PAGE_BYTES, Context, RpcBase, acting_for, refused
from executor_service.rpc.gate import gated
from executor_service.runs.visibility import Viewer
from memory_service.access.audit import AuditAction
from memory_service.search.index import Hit
from memory_service.search.planning import PlanError, SearchPlan, plan_search, size_violations
from memory_service.search.query_notes import query_reading
from memory_service.search.reading import relaxed_minimum
from memory_service.security.identity import Action, Principal
from memory_service.servicekit.errors import ServiceError, invalid_argument, unavailable
from memory_service.servicekit.paging import fit_page, page_bounds
from memory_service.servicekit.tracing import set_attributes, span


def _hits_found(
    request: executor_pb2.SearchRunsRequest, response: executor_pb2.SearchRunsResponse
) -> tuple[Sequence[str], int]:
    return [hit.run_id for hit in response.hits], len(response.hits)


_MODES = frozenset(executor_pb2.SearchRunsMode.values())


class SearchingRpcs(RpcBase):
    """Searches runs."""

    @gated(AuditAction.SEARCH, Action.READ, _hits_found)
    async def SearchRuns(
        self, request: executor_pb2.SearchRunsRequest, context: Context, principal: Principal
    ) -> executor_pb2.SearchRunsResponse:
        # Its mode and where the answer came from; never the query or filter.
        mode = executor_pb2.SearchRunsMode.Name(request.mode) if request.mode in _MODES else None
        with span("attune.search", namespace=self._memory.namespace, mode=mode) as current:
            response = await self._search(request, context, principal)
            set_attributes(
                current,
                source=executor_pb2.SearchSource.Name(response.source),
                degraded=response.degraded,
                hits=len(response.hits),
            )
            return response

    async def _search(
        self, request: executor_pb2.SearchRunsRequest, context: Context, principal: Principal
    ) -> executor_pb2.SearchRunsResponse:
        started = time.perf_counter()
        limit = page_bounds(request.page_size, 10, 100)
        # Sizes first: nothing reads the query or filter before they are bounded.
        if violations := size_violations(request.query, request.filter):
            raise invalid_argument(violations)
        # Memory is searched as the caller (the executor acting on their
        # behalf), never with the executor's own rights, so the caller's
        # visibility applies there: no confused deputy. The run files show a
        # SENSITIVE run only to its owner (nor do its words shape anyone
        # else's plan), as the memory service does.
        on_behalf_of = acting_for(principal)
        viewer = Viewer.of(principal)
        # Other replicas' runs (a shared runs directory) shape the plan and
        # the local answers too.
        await self._local_index.catch_up()
        # Planned here too, with the same code as the memory service, so a bad
        # request fails the same way whether or not the memory service is up.
        try:
            plan = plan_search(
                request.query,
                request.filter,
                not request.disable_query_understanding,
                self._local_index.vocabulary(viewer=viewer),
                datetime.now(UTC),
                forms=self._forms,
            )
        except PlanError as error:
            raise invalid_argument(error.violations) from None
        if request.mode not in executor_pb2.SearchRunsMode.values():
            raise invalid_argument([("mode", f"{request.mode} is not a defined value")])
        mode = request.mode or executor_pb2.SEARCH_RUNS_MODE_AUTO
        if mode == executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES:
            return _measured(mode, started, self._local_answer(plan, limit, "", viewer))
        try:
            response = await self._memory.search(
                memory_pb2.SearchPatternsRequest(
                    query=request.query,
                    filter=request.filter,
                    page_size=limit,
                    explain=request.explain,
                    disable_query_understanding=request.disable_query_understanding,
                ),
                context.time_remaining(),
                on_behalf_of=on_behalf_of,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in CREDENTIAL_CODES:
                # Surfaced, in every mode, never degraded to the local files:
                # a refusal is an answer, not an outage, and an answer from
                # files would bypass the memory service's access control.
                raise refused(error, on_behalf_of) from None
            if error.code() not in UNREACHABLE_CODES:
                raise ServiceError(error.code(), f"memory service: {error.details()}") from None
            if mode == executor_pb2.SEARCH_RUNS_MODE_MEMORY:
                raise unavailable(f"memory service unreachable: {error.details()}") from None
            reason = (
                f"memory service unreachable ({error.code().name}); answered from local run files"
            )
            if isinstance(error, BreakerOpenError):
                # Nothing was sent: say why, so no one hunts for a timeout.
                reason = (
                    "memory service unreachable (circuit breaker open); "
                    "answered from local run files"
                )
            return _measured(mode, started, self._local_answer(plan, limit, reason, viewer))
        hits = [run_hit(result.pattern, result.score) for result in response.results]
        source = executor_pb2.SEARCH_SOURCE_MEMORY
        if mode == executor_pb2.SEARCH_RUNS_MODE_HYBRID:
            seen = {hit.run_id for hit in hits}
            local, _ = self._local_search(plan, limit, viewer)
            hits += [run_hit(h.pattern, h.score) for h in local if h.pattern.id not in seen][
                : max(0, limit - len(hits))
            ]
            source = executor_pb2.SEARCH_SOURCE_HYBRID
        answer = executor_pb2.SearchRunsResponse(
            hits=within_page(hits),
            source=source,
            applied_filter=response.applied_filter,
            applied_query=response.applied_query,
            query_reading=response.query_reading,
        )
        return _measured(mode, started, answer)

    def _local_search(self, plan: SearchPlan, limit: int, viewer: Viewer) -> tuple[list[Hit], int]:
        """The best runs of the local files for the plan, and the minimum of
        ranked words they were searched with: relaxed as the memory service
        relaxes (one page, so none found means none matches)."""
        minimum = plan.min_should_match
        found = self._local_index.search(
            plan.terms, plan.condition, limit, viewer=viewer, min_should_match=minimum
        )
        if (
            relaxed := relaxed_minimum(minimum, len(found), plan.condition is not None)
        ) is not None:
            minimum = relaxed
            found = self._local_index.search(
                plan.terms, plan.condition, limit, viewer=viewer, min_should_match=minimum
            )
        return found, minimum

    def _local_answer(
        self, plan: SearchPlan, limit: int, degraded_reason: str, viewer: Viewer
    ) -> executor_pb2.SearchRunsResponse:
        found, minimum = self._local_search(plan, limit, viewer)
        return executor_pb2.SearchRunsResponse(
            hits=within_page([run_hit(hit.pattern, hit.score) for hit in found]),
            source=executor_pb2.SEARCH_SOURCE_LOCAL_FILES,
            degraded=bool(degraded_reason),
            degraded_reason=degraded_reason,
            applied_filter=plan.applied_filter,
            applied_query=plan.applied_query,
            query_reading=query_reading(plan, minimum, found),
        )


def _measured(
    mode: executor_pb2.SearchRunsMode.ValueType,
    started: float,
    response: executor_pb2.SearchRunsResponse,
) -> executor_pb2.SearchRunsResponse:
    """The answer, once its latency, mode and source are recorded."""
    metrics.search_answered(
        metrics.SEARCH_MODES.get(mode, "auto"),
        metrics.SEARCH_SOURCES.get(response.source, "unknown"),
        time.perf_counter() - started,
        response.degraded,
    )
    return response


def within_page(hits: list[executor_pb2.RunHit]) -> list[executor_pb2.RunHit]:
    """The best hits a response can carry: a summary is up to 256 KiB, and a
    page of 100 would pass any message limit."""
    kept, _ = fit_page(hits, executor_pb2.RunHit.ByteSize, _hit_id, MAX_PAGE_BYTES)
    return kept


def _hit_id(hit: executor_pb2.RunHit) -> str:
    return hit.run_id


def run_hit(pattern: memory_pb2.Pattern, score: float) -> executor_pb2.RunHit:
    hit = executor_pb2.RunHit(
        run_id=pattern.run_id or pattern.id,
        template_id=pattern.template_id,
        success=pattern.success,
        total_cost_usd=pattern.total_cost_usd,
        score=score,
        summary=pattern.content,
        runner=pattern.runner,
    )
    hit.create_time.CopyFrom(pattern.create_time)
    return hit
