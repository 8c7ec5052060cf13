"""Short-term context: per-session key/value entries with a time to live."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ContextItem:
    """One unexpired context entry."""

    key: str
    value: str
    update_us: int
    expire_us: int


def now_us() -> int:
    """The current time in microseconds since the epoch."""
    return time.time_ns() // 1000


class ContextStore(Protocol):
    """Where session context lives; an expired entry is never returned."""

    async def set_context(
        self, namespace: str, session_id: str, key: str, value: str, ttl_seconds: float
    ) -> ContextItem:
        """Sets one entry, replacing any earlier value and expiry."""
        ...

    async def get_context(self, namespace: str, session_id: str, key: str) -> list[ContextItem]:
        """The session's unexpired entries (one key, or all when key is "")."""
        ...

    async def delete_context(self, namespace: str, session_id: str, key: str) -> int:
        """Deletes one entry, or all of the session's when key is ""; returns how many."""
        ...
