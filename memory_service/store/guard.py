"""A PatternStore whose unavailability reaches clients as UNAVAILABLE.

The servicer wraps its store in `UnavailableAsStatus`, so every RPC that
touches a backend that cannot be reached answers UNAVAILABLE (with a retry
hint) and the backend's message, instead of INTERNAL.
"""

from __future__ import annotations

from attune.memory.v1 import memory_pb2
from memory_service.search.filter import Node
from memory_service.search.index import Group, Hit, Recency
from memory_service.search.query import Term
from memory_service.servicekit.errors import ServiceError, unavailable
from memory_service.store.base import PatternStore, PutOutcome, StoreUnavailableError
from memory_service.store.context import ContextItem

RETRY_AFTER_SECONDS = 1.0


def _status(error: StoreUnavailableError) -> ServiceError:
    return unavailable(f"{error}; retry later", RETRY_AFTER_SECONDS)


class UnavailableAsStatus:
    """Delegates to a store, turning StoreUnavailableError into UNAVAILABLE."""

    def __init__(self, store: PatternStore) -> None:
        self._store = store

    async def put(self, namespace: str, pattern: memory_pb2.Pattern, replace: bool) -> PutOutcome:
        try:
            return await self._store.put(namespace, pattern, replace)
        except StoreUnavailableError as error:
            raise _status(error) from None

    async def get(self, namespace: str, pattern_id: str) -> memory_pb2.Pattern | None:
        try:
            return await self._store.get(namespace, pattern_id)
        except StoreUnavailableError as error:
            raise _status(error) from None

    async def delete(self, namespace: str, pattern_id: str) -> bool:
        try:
            return await self._store.delete(namespace, pattern_id)
        except StoreUnavailableError as error:
            raise _status(error) from None

    async def search(
        self,
        namespace: str,
        terms: list[Term],
        condition: Node | None,
        limit: int,
        offset: int,
        recency: Recency | None,
        explain: bool,
    ) -> tuple[list[Hit], int]:
        try:
            return await self._store.search(
                namespace, terms, condition, limit, offset, recency, explain
            )
        except StoreUnavailableError as error:
            raise _status(error) from None

    async def page(
        self,
        namespace: str,
        condition: Node | None,
        order_by: list[tuple[str, bool]],
        limit: int,
        offset: int,
    ) -> tuple[list[memory_pb2.Pattern], int]:
        try:
            return await self._store.page(namespace, condition, order_by, limit, offset)
        except StoreUnavailableError as error:
            raise _status(error) from None

    async def count(
        self, namespace: str, condition: Node | None, group_by: str
    ) -> tuple[int, list[Group]]:
        try:
            return await self._store.count(namespace, condition, group_by)
        except StoreUnavailableError as error:
            raise _status(error) from None

    async def vectors(self, namespace: str, condition: Node | None) -> list[tuple[str, bytes]]:
        try:
            return await self._store.vectors(namespace, condition)
        except StoreUnavailableError as error:
            raise _status(error) from None

    async def get_many(
        self, namespace: str, pattern_ids: list[str]
    ) -> dict[str, memory_pb2.Pattern]:
        try:
            return await self._store.get_many(namespace, pattern_ids)
        except StoreUnavailableError as error:
            raise _status(error) from None

    async def query_vocabulary(self, namespace: str) -> tuple[list[str], list[str]]:
        try:
            return await self._store.query_vocabulary(namespace)
        except StoreUnavailableError as error:
            raise _status(error) from None

    async def set_context(
        self, namespace: str, session_id: str, key: str, value: str, ttl_seconds: float
    ) -> ContextItem:
        try:
            return await self._store.set_context(namespace, session_id, key, value, ttl_seconds)
        except StoreUnavailableError as error:
            raise _status(error) from None

    async def get_context(self, namespace: str, session_id: str, key: str) -> list[ContextItem]:
        try:
            return await self._store.get_context(namespace, session_id, key)
        except StoreUnavailableError as error:
            raise _status(error) from None

    async def delete_context(self, namespace: str, session_id: str, key: str) -> int:
        try:
            return await self._store.delete_context(namespace, session_id, key)
        except StoreUnavailableError as error:
            raise _status(error) from None

    async def ping(self) -> bool:
        return await self._store.ping()

    async def close(self) -> None:
        await self._store.close()
