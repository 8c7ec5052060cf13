"""The MemoryService RPCs. RPCs not listed here answer UNIMPLEMENTED."""

from __future__ import annotations

import logging
from typing import Any

import grpc

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from memory_service.patterns import (
    MAX_BATCH,
    namespace_violations,
    pattern_id_violations,
    store_violations,
)
from memory_service.search.query import QueryError, parse_query
from memory_service.servicekit.errors import ServiceError, invalid_argument, not_found
from memory_service.store.base import PatternConflictError, PatternStore

log = logging.getLogger("attune.memory")

Context = grpc.aio.ServicerContext[Any, Any]

DEFAULT_SEARCH_PAGE = 10
MAX_SEARCH_PAGE = 100


class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
    """Serves patterns from one PatternStore."""

    def __init__(self, store: PatternStore) -> None:
        self._store = store

    async def _store_one(
        self, request: memory_pb2.StorePatternRequest, field_prefix: str = ""
    ) -> memory_pb2.StorePatternResponse:
        if violations := store_violations(request, field_prefix):
            raise invalid_argument(violations)
        try:
            outcome = await self._store.put(request.namespace, request.pattern, request.replace)
        except PatternConflictError:
            raise ServiceError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"a different pattern with id {request.pattern.id!r} already exists in namespace "
                f"{request.namespace!r}; set replace=true to overwrite it",
            ) from None
        log.info(
            "pattern stored",
            extra={
                "namespace": request.namespace,
                "pattern_id": request.pattern.id,
                "deduped": outcome.deduped,
                "replaced": outcome.replaced,
            },
        )
        return memory_pb2.StorePatternResponse(
            pattern=outcome.pattern, deduped=outcome.deduped, replaced=outcome.replaced
        )

    async def StorePattern(
        self, request: memory_pb2.StorePatternRequest, context: Context
    ) -> memory_pb2.StorePatternResponse:
        return await self._store_one(request)

    async def BatchStorePatterns(
        self, request: memory_pb2.BatchStorePatternsRequest, context: Context
    ) -> memory_pb2.BatchStorePatternsResponse:
        if not request.requests:
            raise invalid_argument([("requests", "at least one write is required")])
        if len(request.requests) > MAX_BATCH:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"a batch holds at most {MAX_BATCH} writes; got {len(request.requests)}",
            )
        results = []
        for index, item in enumerate(request.requests):
            result = memory_pb2.BatchStorePatternResult(index=index)
            try:
                result.response.CopyFrom(await self._store_one(item, f"requests[{index}]."))
            except ServiceError as error:
                result.code = error.code.value[0]
                result.message = error.message
            results.append(result)
        return memory_pb2.BatchStorePatternsResponse(results=results)

    async def GetPattern(
        self, request: memory_pb2.GetPatternRequest, context: Context
    ) -> memory_pb2.GetPatternResponse:
        _check_address(request.namespace, request.pattern_id)
        pattern = await self._store.get(request.namespace, request.pattern_id)
        if pattern is None:
            raise not_found("pattern", f"{request.namespace}/{request.pattern_id}")
        return memory_pb2.GetPatternResponse(pattern=pattern)

    async def DeletePattern(
        self, request: memory_pb2.DeletePatternRequest, context: Context
    ) -> memory_pb2.DeletePatternResponse:
        _check_address(request.namespace, request.pattern_id)
        deleted = await self._store.delete(request.namespace, request.pattern_id)
        if not deleted and not request.allow_missing:
            raise not_found("pattern", f"{request.namespace}/{request.pattern_id}")
        return memory_pb2.DeletePatternResponse(deleted=deleted)

    async def SearchPatterns(
        self, request: memory_pb2.SearchPatternsRequest, context: Context
    ) -> memory_pb2.SearchPatternsResponse:
        violations = namespace_violations(request.namespace)
        if request.filter:
            # The filter language arrives with the search issue; until then a
            # filter is refused rather than silently ignored.
            raise ServiceError(
                grpc.StatusCode.UNIMPLEMENTED, "SearchPatterns does not support filter yet"
            )
        if not request.query.strip():
            violations.append(("query", "required: give words to search for"))
        if request.page_token:
            violations.append(("page_token", "not a token this service issued"))
        if not 0 <= request.page_size <= MAX_SEARCH_PAGE:
            violations.append(("page_size", f"must be between 0 and {MAX_SEARCH_PAGE}"))
        terms = []
        if request.query.strip():
            try:
                terms = parse_query(request.query)
            except QueryError as error:
                violations.append(("query", str(error)))
        if violations:
            raise invalid_argument(violations)
        found = await self._store.search(
            request.namespace, terms, request.page_size or DEFAULT_SEARCH_PAGE
        )
        return memory_pb2.SearchPatternsResponse(
            results=[memory_pb2.SearchResult(pattern=p, score=score) for p, score in found],
            applied_query=request.query,
            effective_mode=memory_pb2.SEARCH_MODE_KEYWORD,
            total_size=len(found),
        )

    # Later issues implement these; until then they answer UNIMPLEMENTED,
    # naming the RPC (the interceptor maps NotImplementedError).
    async def ListPatterns(
        self, request: memory_pb2.ListPatternsRequest, context: Context
    ) -> memory_pb2.ListPatternsResponse:
        raise NotImplementedError

    async def CountPatterns(
        self, request: memory_pb2.CountPatternsRequest, context: Context
    ) -> memory_pb2.CountPatternsResponse:
        raise NotImplementedError

    async def SetContext(
        self, request: memory_pb2.SetContextRequest, context: Context
    ) -> memory_pb2.SetContextResponse:
        raise NotImplementedError

    async def GetContext(
        self, request: memory_pb2.GetContextRequest, context: Context
    ) -> memory_pb2.GetContextResponse:
        raise NotImplementedError

    async def DeleteContext(
        self, request: memory_pb2.DeleteContextRequest, context: Context
    ) -> memory_pb2.DeleteContextResponse:
        raise NotImplementedError

    async def PromoteContext(
        self, request: memory_pb2.PromoteContextRequest, context: Context
    ) -> memory_pb2.PromoteContextResponse:
        raise NotImplementedError

    async def ListAuditEvents(
        self, request: memory_pb2.ListAuditEventsRequest, context: Context
    ) -> memory_pb2.ListAuditEventsResponse:
        raise NotImplementedError


def _check_address(namespace: str, pattern_id: str) -> None:
    violations = namespace_violations(namespace) + pattern_id_violations(pattern_id, "pattern_id")
    if violations:
        raise invalid_argument(violations)
