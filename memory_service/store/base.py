"""The interface every storage backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from attune.memory.v1 import memory_pb2
from memory_service.search.query import Term


class PatternConflictError(Exception):
    """A different pattern is already stored under the id."""


@dataclass(frozen=True)
class PutOutcome:
    """What a write did."""

    pattern: memory_pb2.Pattern
    deduped: bool
    replaced: bool


class PatternStore(Protocol):
    """Durable, idempotent storage of patterns with text search."""

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
        """Deletes the pattern and its index entry; False if it did not exist."""
        ...

    async def search(
        self, namespace: str, terms: list[Term], limit: int
    ) -> list[tuple[memory_pb2.Pattern, float]]:
        """The best patterns for the terms, with their scores, best first."""
        ...

    async def ping(self) -> bool:
        """Whether the backend answers."""
        ...

    async def close(self) -> None:
        """Releases the backend."""
        ...
