"""The interface every storage backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from attune.memory.v1 import memory_pb2
from memory_service.search.filter import Node
from memory_service.search.index import Group, Hit, Recency
from memory_service.search.query import Term
from memory_service.store.context import ContextStore


class PatternConflictError(Exception):
    """A different pattern is already stored under the id."""


class StoreUnavailableError(Exception):
    """The backend cannot be reached; the message says which and why."""


@dataclass(frozen=True)
class PutOutcome:
    """What a write did."""

    pattern: memory_pb2.Pattern
    deduped: bool
    replaced: bool


class PatternStore(ContextStore, Protocol):
    """Durable, idempotent storage of patterns, with search.

    Every read that starts after a write was acknowledged sees that write.
    """

    async def put(self, namespace: str, pattern: memory_pb2.Pattern, replace: bool) -> PutOutcome:
        """Stores a pattern; the same pattern again is a no-op (deduped).

        Raises PatternConflictError for a different pattern under an existing
        id unless replace is set. Returns only once the write is durable.
        """
        ...

    async def get(self, namespace: str, pattern_id: str) -> memory_pb2.Pattern | None:
        """The pattern, or None."""
        ...

    async def delete(self, namespace: str, pattern_id: str) -> bool:
        """Deletes the pattern, its index entries and vector; False if absent."""
        ...

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
        """Ranked patterns matching every term and the filter, and the total."""
        ...

    async def page(
        self,
        namespace: str,
        condition: Node | None,
        order_by: list[tuple[str, bool]],
        limit: int,
        offset: int,
    ) -> tuple[list[memory_pb2.Pattern], int]:
        """A page of patterns passing the filter, in order, and the total."""
        ...

    async def count(
        self, namespace: str, condition: Node | None, group_by: str
    ) -> tuple[int, list[Group]]:
        """How many patterns pass the filter, grouped by a field."""
        ...

    async def vectors(self, namespace: str, condition: Node | None) -> list[tuple[str, bytes]]:
        """(id, embedding) of the patterns passing the filter that have one."""
        ...

    async def get_many(
        self, namespace: str, pattern_ids: list[str]
    ) -> dict[str, memory_pb2.Pattern]:
        """Patterns by id; absent ids are left out."""
        ...

    async def query_vocabulary(self, namespace: str) -> tuple[list[str], list[str]]:
        """(template ids, numeric form question ids) of a namespace, for query understanding."""
        ...

    async def ping(self) -> bool:
        """Whether the backend answers."""
        ...

    async def close(self) -> None:
        """Releases the backend."""
        ...
