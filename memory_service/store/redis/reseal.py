"""Re-sealing one SENSITIVE pattern in Redis under the active key."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import cast

from attune.memory.v1 import memory_pb2
from memory_service.search.index import expire_us
from memory_service.security.crypto import Keyring
from memory_service.store.redis.link import RedisLink
from memory_service.store.redis.scripts import RESEAL_SCRIPT, Script
from memory_service.store.secure_index import associated_data, is_sensitive

log = logging.getLogger("attune.memory.redis")


class Resealer:
    """Re-seals patterns in Redis with a compare-and-set script that logs a
    `put`, so every replica's cache picks the new envelope up."""

    def __init__(self, link: RedisLink, keyring: Keyring) -> None:
        self._link = link
        self._keyring = keyring
        self._reseal_script = Script(RESEAL_SCRIPT)

    async def reseal(self, namespace: str, pattern_id: str, owner: str) -> bool:
        """Re-seals the owner's SENSITIVE pattern under the id if it needs it
        (at its own key, or where a version before per-owner ids kept it).

        Compare-and-set: if a write lands between the read and the set,
        reads again (the write may have sealed it under the active key).
        """
        for key in (
            self._link.sealed_key(namespace, pattern_id, owner),
            self._link.pattern_key(namespace, pattern_id),
        ):
            if await self._reseal_at(namespace, pattern_id, owner, key):
                return True
        return False

    async def _reseal_at(self, namespace: str, pattern_id: str, owner: str, key: str) -> bool:
        for _ in range(5):
            body, flag = await self._link.call(
                "read_sealed",
                f"reading pattern {pattern_id!r}",
                cast(
                    Awaitable[list[bytes | None]], self._link.client.hmget(key, ["body", "sealed"])
                ),
            )
            if body is None:
                return False  # Deleted meanwhile.
            data = associated_data(namespace, pattern_id)
            if flag == b"1":
                if not self._keyring.needs_reencrypt(body):
                    return False
                plaintext = self._keyring.decrypt(body, data)
            else:
                plaintext = body
            pattern = memory_pb2.Pattern.FromString(plaintext)
            if not is_sensitive(pattern) or pattern.owner != owner:
                return False  # Not (or no longer) the owner's SENSITIVE pattern.
            swapped = await self._link.script(
                "reseal_pattern",
                f"re-sealing pattern {pattern_id!r}",
                self._reseal_script,
                [key, self._link.key(namespace, "log")],
                [
                    pattern_id,
                    body,
                    self._keyring.encrypt(plaintext, data),
                    pattern.owner,
                    expire_us(pattern),
                ],
            )
            if swapped:
                return True
        log.warning("pattern %r in %r kept changing; not re-sealed", pattern_id, namespace)
        return False
