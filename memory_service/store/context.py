"""Short-term context: per-session key/value entries with a time to live.

Every entry belongs to the principal that set it (its owner). A private
entry (the default) is seen, changed, deleted and promoted by its owner
alone; to anyone else it does not exist, so another principal's reads
answer exactly as for a missing entry (no oracle of what others hold). A
shared entry is seen by every reader of the namespace, and still changed,
deleted and promoted by its owner alone.

Each owner holds at most one entry per session and key, private or shared:
setting it again with the other visibility moves it. Another principal may
hold a private entry under the same key; a reader then sees their own
entry, not the shared one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ContextItem:
    """One unexpired context entry."""

    key: str
    value: str
    update_us: int
    expire_us: int
    owner: str = ""
    shared: bool = False


class ContextOwnedError(Exception):
    """A shared entry of another principal holds the key: only its owner changes it."""


def now_us() -> int:
    """The current time in microseconds since the epoch."""
    return time.time_ns() // 1000


def visible(items: Iterable[ContextItem], viewer: str) -> list[ContextItem]:
    """What the viewer sees of a session's entries: one per key, their own first, by key."""
    chosen: dict[str, ContextItem] = {}
    for item in items:
        if not item.shared and item.owner != viewer:
            continue  # Never anyone else's private entry.
        held = chosen.get(item.key)
        if held is None or (item.owner == viewer and held.owner != viewer):
            chosen[item.key] = item
    return [chosen[key] for key in sorted(chosen)]


class ContextStore(Protocol):
    """Where session context lives; an expired entry is never returned."""

    async def set_context(
        self,
        namespace: str,
        session_id: str,
        key: str,
        value: str,
        ttl_seconds: float,
        *,
        owner: str,
        shared: bool = False,
    ) -> ContextItem:
        """Sets the owner's entry, replacing its earlier value, visibility and expiry.

        ContextOwnedError if `shared` and another owner's shared entry holds the key.
        """
        ...

    async def get_context(
        self, namespace: str, session_id: str, key: str, *, viewer: str
    ) -> list[ContextItem]:
        """The session's unexpired entries the viewer sees (one key, or all when key is "")."""
        ...

    async def delete_context(self, namespace: str, session_id: str, key: str, *, owner: str) -> int:
        """Deletes the owner's entry, or all its entries of the session when key is "";
        returns how many. Other owners' entries stay."""
        ...
