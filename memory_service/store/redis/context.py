"""Short-term session context on Redis.

An entry is one string key with a Redis TTL; a set lists a session's keys
of one space: an owner's private entries, or the session's shared ones
(see store/context.py). All share the namespace's hash tag, so Cluster
keeps them on one node. Keys of earlier versions (`ctx:`, `ctxkeys:`)
had no owner: nothing reads them, and they expire with their TTL.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import cast

from memory_service.store.context import ContextItem, ContextOwnedError, now_us, visible
from memory_service.store.redis.link import RedisLink, text
from memory_service.store.redis.scripts import DELETE_CONTEXT_SCRIPT, SET_CONTEXT_SCRIPT, Script


class RedisContextStore:
    """The ContextStore half of the Redis store: entries live in Redis only."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._set_context = Script(SET_CONTEXT_SCRIPT)
        self._delete_context = Script(DELETE_CONTEXT_SCRIPT)

    def _context_key(self, namespace: str, session_id: str, space: str, key: str) -> str:
        # Lengths first: no (space, session, key) can name another's entry.
        return self._link.key(
            namespace, f"ctxe:{len(space)}:{space}:{len(session_id)}:{session_id}:{key}"
        )

    def _context_keys(self, namespace: str, session_id: str, space: str) -> str:
        return self._link.key(namespace, f"ctxs:{len(space)}:{space}:{session_id}")

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
        now = now_us()
        item = ContextItem(key, value, now, now + int(ttl_seconds * 1e6), owner, shared)
        entry = json.dumps({"v": value, "u": item.update_us, "e": item.expire_us, "o": owner})
        written = await self._link.script(
            "set_context",
            f"setting context {key!r}",
            self._set_context,
            [
                self._context_key(namespace, session_id, owner, key),
                self._context_keys(namespace, session_id, owner),
                self._context_key(namespace, session_id, "", key),
                self._context_keys(namespace, session_id, ""),
            ],
            [entry, max(1, int(ttl_seconds * 1000)), key, owner, "1" if shared else "0"],
        )
        if not written:
            raise ContextOwnedError(key)
        return item

    async def _space_items(
        self, namespace: str, session_id: str, space: str, key: str
    ) -> list[ContextItem]:
        """The unexpired entries of one space of the session (one key, or all)."""
        keys = [key] if key else sorted(await self._session_keys(namespace, session_id, space))
        if not keys:
            return []
        entries = await self._link.call(
            "get_context",
            "reading context",
            cast(
                Awaitable[list[bytes | None]],
                self._link.client.mget(
                    [self._context_key(namespace, session_id, space, k) for k in keys]
                ),
            ),
        )
        now = now_us()
        found = []
        for name, raw in zip(keys, entries, strict=True):
            if raw is None:
                continue  # Expired: Redis dropped it.
            data = json.loads(raw)
            if int(data["e"]) > now:
                found.append(
                    ContextItem(
                        name,
                        str(data["v"]),
                        int(data["u"]),
                        int(data["e"]),
                        str(data["o"]),
                        not space,
                    )
                )
        return found

    async def get_context(
        self, namespace: str, session_id: str, key: str, *, viewer: str
    ) -> list[ContextItem]:
        mine = await self._space_items(namespace, session_id, viewer, key)
        shared = await self._space_items(namespace, session_id, "", key)
        return visible([*mine, *shared], viewer)

    async def _session_keys(self, namespace: str, session_id: str, space: str) -> list[str]:
        members = await self._link.call(
            "list_context",
            "listing context",
            cast(
                Awaitable[set[bytes]],
                self._link.client.smembers(self._context_keys(namespace, session_id, space)),
            ),
        )
        return [text(member) for member in members]

    async def delete_context(self, namespace: str, session_id: str, key: str, *, owner: str) -> int:
        deleted = 0
        for space in (owner, ""):
            names = [key] if key else await self._session_keys(namespace, session_id, space)
            if not names:
                continue
            deleted += int(
                await self._link.script(
                    "delete_context",
                    "deleting context",
                    self._delete_context,
                    [
                        *(self._context_key(namespace, session_id, space, k) for k in names),
                        self._context_keys(namespace, session_id, space),
                    ],
                    [owner, *names],
                )
            )
        return deleted
