"""The interface every storage backend implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from attune.memory.v1 import memory_pb2
from memory_service.search.filter import Node
from memory_service.search.index import Group, Hit, PageQuery, ReadQuery
from memory_service.store.context import ContextStore

# Told how many patterns of a classification a purge deleted.
Purged = Callable[[str, int], None]


class PatternConflictError(Exception):
    """A different pattern the writer can see is already stored under the id."""


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

    Visibility: every read takes the viewer, the caller's user id. A
    SENSITIVE pattern is visible only to its owner (`pattern.owner ==
    viewer`); to anyone else it is absent, in every read and every write.
    Its id is its owner's: under one id a namespace holds at most one
    non-SENSITIVE pattern and one SENSITIVE pattern per owner. A read by id
    gives the viewer's own SENSITIVE one first, then the non-SENSITIVE one;
    lists and searches show both when a viewer has both. An expired
    pattern (`0 < expire_time <= now`) is absent to everyone until
    `purge_expired` deletes it.

    At rest a SENSITIVE pattern exists only sealed with the keyring the
    store was opened with: opening a store that holds sealed patterns
    without a key raises MissingKeyError, and with a key missing from the
    keyring DecryptionError (naming the key id).
    """

    async def put(self, namespace: str, pattern: memory_pb2.Pattern, replace: bool) -> PutOutcome:
        """Stores a pattern; the same pattern again is a no-op (deduped).

        `pattern.owner`, `classification` and `expire_time` are as the
        caller decided them. The write sees what its owner would read under
        the id (their own SENSITIVE version and the non-SENSITIVE one):
        deduped if one is the same pattern; PatternConflictError if one
        differs, unless replace is set, which replaces both. Another user's
        SENSITIVE pattern under the id is never seen, touched or returned:
        the answer is the one a fresh id gets (so it confirms nothing). The
        checks are atomic with the write. An expired pattern under the id
        counts as absent. Raises MissingKeyError for a SENSITIVE pattern
        when no key is configured. Returns only once the write is durable.
        """
        ...

    async def get(
        self, namespace: str, pattern_id: str, *, viewer: str
    ) -> memory_pb2.Pattern | None:
        """The pattern, or None (absent, expired, or not the viewer's to see)."""
        ...

    async def delete(self, namespace: str, pattern_id: str, *, viewer: str) -> bool:
        """Deletes the pattern `get` gives the viewer, its index entries and
        vector; False if there is none (absent, expired, or only another
        owner's SENSITIVE pattern)."""
        ...

    async def search(self, query: ReadQuery, *, viewer: str) -> tuple[list[Hit], int]:
        """Ranked patterns the viewer may see matching every term and the filter,
        and the total."""
        ...

    async def page(self, query: PageQuery, *, viewer: str) -> tuple[list[memory_pb2.Pattern], int]:
        """A page of the patterns the viewer may see passing the filter, in
        order, and the total."""
        ...

    async def count(
        self, namespace: str, condition: Node | None, group_by: str, *, viewer: str
    ) -> tuple[int, list[Group]]:
        """How many patterns the viewer may see pass the filter, grouped by a field."""
        ...

    async def vectors(
        self, namespace: str, condition: Node | None, *, viewer: str
    ) -> list[tuple[str, bytes]]:
        """(id, embedding) of the patterns the viewer may see passing the filter
        that have one."""
        ...

    async def get_many(
        self, namespace: str, pattern_ids: list[str], *, viewer: str
    ) -> dict[str, memory_pb2.Pattern]:
        """Patterns the viewer may see, by id; other ids are left out."""
        ...

    async def query_vocabulary(self, namespace: str, *, viewer: str) -> tuple[list[str], list[str]]:
        """(template ids, numeric form question ids) of the live patterns of a
        namespace the viewer may see, for query understanding: so another
        user's SENSITIVE, deleted or expired pattern never shapes a query."""
        ...

    async def purge_expired(self, counted: Purged | None = None) -> int:
        """Deletes every pattern expired by now, for good; how many went.

        Safe to run on several replicas at once: each pattern is deleted once.
        `counted(classification, n)` is told how many of each classification
        (PUBLIC, INTERNAL, SENSITIVE) this call deleted.
        """
        ...

    async def reencrypt(
        self, progress: Callable[[int, int], None] | None = None
    ) -> tuple[int, int]:
        """Re-seals every SENSITIVE pattern not sealed under the active key.

        Returns (re-sealed, sealed in total). `progress(done, total)` is
        called as it goes. Needs every key still in use configured.
        """
        ...

    async def ping(self) -> bool:
        """Whether the backend answers."""
        ...

    async def close(self) -> None:
        """Releases the backend."""
        ...
