"""The Redis backend: Redis holds the patterns, each replica searches a local cache.

Redis is the source of truth. Per namespace every key carries the same hash
tag, so one Lua script per write runs atomically also on Redis Cluster:

- `<prefix>:{<ns>}:pattern:<id>`: a hash, `body` (the stored Pattern),
  `sealed` ("0"), `fingerprint` (the digest that makes writes idempotent),
  `owner_guard` ("") and `expire_us` (retention; 0: never): the
  non-SENSITIVE pattern under the id;
- `<prefix>:{<ns>}:sealed:<len(owner)>:<owner>:<id>`: the same hash for the
  owner's SENSITIVE pattern under the id, `body` its AES-256-GCM envelope
  (no plaintext in Redis), `sealed` "1", `owner_guard` the owner. Ids of
  SENSITIVE patterns are per owner (see SecureIndex): a write never meets
  another owner's, so its answer confirms nothing. `<prefix>:{<ns>}:owners:<id>`
  is the set of owners holding one. A version before per-owner ids kept a
  SENSITIVE pattern in the `pattern:<id>` hash with its owner as
  `owner_guard`: it is read there still, and moved to its own key when
  someone else writes a non-SENSITIVE pattern under the id;
- `<prefix>:{<ns>}:log`: a stream with one entry per put or delete (`op`,
  `id`, `fingerprint`): the order in which the namespace changed (an entry
  names the id: applying it mirrors every version under the id);
- `<prefix>:{<ns>}:epoch`: a random token the namespace's first write sets.
  It names this incarnation of the namespace's data: if Redis loses it (a
  restart without persistence, a flush, a cluster node that came back
  empty) the token vanishes or changes, and every replica notices.

`<prefix>:namespaces` is a set of every namespace written, so a starting
replica knows what to load before it reports ready.

Searching runs on a `SecureIndex` in a local SQLite file,
`<data_dir>/redis-index.sqlite3`: a cache, so `synchronous=OFF`. It keeps
SENSITIVE patterns as their envelopes on disk and plaintext in memory only. The cache
records, per namespace, the epoch it describes and the id of the last log
entry it applied. Before every read (search, page, count, query vocabulary)
the replica catches the namespace up: one read-only script returns the
epoch and the log entries after that id; if the epoch differs, the
namespace is dropped from the cache and replayed from the start. For the
patterns the entries name, the replica fetches the *current* hash (or its
absence) and indexes that. A write is acknowledged only after its log entry
exists, so any read that starts later, on any replica, sees it
(read-your-writes). `get` reads Redis directly.

Log entries carry no body: applying an entry means "index the pattern's
current state", which is idempotent and converges whatever the interleaving
with concurrent writes, keeps each body in Redis once rather than once per
version, and lets a replay that meets many versions of one pattern fetch it
once per batch.

Startup loads every namespace before `open()` returns, so readiness goes
SERVING with a warm cache; a restarted replica replays only the tail after
its recorded ids, and a missing, corrupt or outdated cache file is rebuilt
from the logs. After restoring Redis from an older backup (the epochs come
back unchanged), delete the `<prefix>:{<ns>}:epoch` keys or the replicas'
cache files so every replica rebuilds.

Expired patterns stay in Redis, invisible, until `purge_expired` deletes
them with the delete script (only if still expired, so replicas purging at
once delete each pattern once). `reencrypt` re-seals envelopes under the
active key with a compare-and-set script that logs a `put`, so every
replica's cache picks the new envelope up.

While Redis cannot be reached every operation raises `StoreUnavailableError`
(after redis-py's own retries with backoff), `ping()` answers False, and
redis-py reconnects on the next command once Redis is back. The log is never
trimmed: an entry costs about 100 bytes, bodies are not repeated in it.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from redis.asyncio import RedisCluster

from attune.memory.v1 import memory_pb2
from memory_service.patterns import fingerprint
from memory_service.search.filter import Node
from memory_service.search.index import (
    Group,
    Hit,
    PageQuery,
    ReadQuery,
    UnreadablePatternError,
    decode_pattern,
    expire_us,
    is_expired,
)
from memory_service.security.crypto import DecryptionError, Keyring, MissingKeyError
from memory_service.servicekit.tracing import span
from memory_service.store.base import (
    PatternConflictError,
    Purged,
    PutOutcome,
    StoreUnavailableError,
)
from memory_service.store.context import now_us
from memory_service.store.embedded import conflicts, stamped
from memory_service.store.redis.context import RedisContextStore
from memory_service.store.redis.link import RedisLink, RedisOptions, text
from memory_service.store.redis.replica import ReplicaCache
from memory_service.store.redis.reseal import Resealer
from memory_service.store.redis.scripts import DELETE_SCRIPT, PUT_SCRIPT, Script
from memory_service.store.secure_index import associated_data, is_sensitive

log = logging.getLogger("attune.memory.redis")


class RedisStore(RedisContextStore):
    """PatternStore on Redis (standalone or Cluster) with a local search cache.

    Session context is RedisContextStore's; searches read the ReplicaCache.
    """

    def __init__(
        self,
        data_dir: Path,
        options: RedisOptions,
        keyring: Keyring,
        *,
        clock: Callable[[], int] = now_us,
    ) -> None:
        link = RedisLink(options)
        super().__init__(link)
        self.options = options
        self.where = link.where
        self._keyring = keyring
        self._clock = clock
        self._cache = ReplicaCache(data_dir, link, keyring, clock)
        self.path = self._cache.path
        self._resealer = Resealer(link, keyring)
        self._put = Script(PUT_SCRIPT)
        self._delete = Script(DELETE_SCRIPT)

    # --- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        """Opens the cache and loads every namespace from Redis.

        If Redis cannot be reached yet, the store opens anyway: ping() stays
        False (so readiness stays NOT_SERVING) until it has loaded. Raises
        MissingKeyError if sealed patterns exist but no key is configured,
        DecryptionError if one is sealed under a key that is not.
        """
        await self._cache.open()
        try:
            await self._cache.load()
        except StoreUnavailableError as error:
            log.warning("Redis unavailable at startup; not ready until it answers: %s", error)

    async def ping(self) -> bool:
        try:
            if isinstance(self._link.client, RedisCluster):
                if not await self._cluster_ok():
                    return False
            else:
                await self._link.call(
                    "ping", "pinging", cast(Awaitable[bool], self._link.client.ping())
                )
            await self._cache.load()
        except StoreUnavailableError as error:
            log.debug("Redis ping failed: %s", error)
            return False
        except (MissingKeyError, DecryptionError) as error:
            # Loaded late (Redis was down at start): the same misconfiguration
            # open() would have raised. Not ready until an operator fixes it.
            log.error("cannot load the search cache: %s", error)
            return False
        return True

    async def _cluster_ok(self) -> bool:
        """Whether every primary answers and reports the cluster serving every slot."""
        assert isinstance(self._link.client, RedisCluster)
        info = await self._link.call(
            "cluster_info",
            "checking the cluster",
            cast(
                Awaitable[dict[str, Any]],
                self._link.client.cluster_info(target_nodes=RedisCluster.PRIMARIES),
            ),
        )
        by_node = {"": info} if "cluster_state" in info else info
        states = {node: fields.get("cluster_state") for node, fields in by_node.items()}
        if any(state != "ok" for state in states.values()):
            log.debug("Redis Cluster is not ok: %s", states)
            return False
        return True

    async def close(self) -> None:
        await self._link.close()
        await self._cache.close()

    # --- writes --------------------------------------------------------------------

    async def _register(self, namespace: str) -> None:
        await self._link.call(
            "register_namespace",
            "registering the namespace",
            cast(Awaitable[int], self._link.client.sadd(self._link.namespaces_key, namespace)),
        )
        self._cache.registered.add(namespace)

    async def put(self, namespace: str, pattern: memory_pb2.Pattern, replace: bool) -> PutOutcome:
        digest = fingerprint(pattern)
        stored = stamped(namespace, pattern)
        sealed = is_sensitive(stored)
        body = stored.SerializeToString()
        if sealed:  # MissingKeyError here, before anything is written.
            with span("attune.write.encrypt", namespace=namespace, pattern_id=pattern.id):
                body = self._keyring.encrypt(body, associated_data(namespace, pattern.id))
        if namespace not in self._cache.registered:
            await self._register(namespace)
        result = await self._link.script(
            "put_pattern",
            f"storing pattern {pattern.id!r}",
            self._put,
            self._link.slot_keys(namespace, pattern.id, pattern.owner),
            [
                pattern.id,
                body,
                digest,
                int(replace),
                uuid.uuid4().hex,
                int(sealed),
                pattern.owner if sealed else "",
                expire_us(stored),
                pattern.owner,
                self._clock(),
                self._link.key(namespace, ""),
            ],
        )
        status = text(result[0])
        if status == "deduped":
            existing = self._decode(namespace, pattern.id, bytes(result[1]), result[2] == b"1")
            if conflicts(existing, pattern.owner):  # Sealed before owner guards existed.
                raise PatternConflictError(pattern.id)
            return PutOutcome(existing, True, False)
        if status == "conflict":
            raise PatternConflictError(pattern.id)
        if result[1] == 1:
            # The namespace's first write, or the first since Redis lost it. The
            # write is done: failing to list the namespace only costs a cold start.
            try:
                await self._register(namespace)
            except StoreUnavailableError as error:
                log.warning("could not list namespace %r: %s", namespace, error)
        return PutOutcome(stored, False, status == "replaced")

    def _decode(
        self, namespace: str, pattern_id: str, body: bytes, sealed: bool
    ) -> memory_pb2.Pattern:
        if sealed:
            body = self._keyring.decrypt(body, associated_data(namespace, pattern_id))
        pattern = decode_pattern(body, namespace, pattern_id)
        if pattern is None:
            raise UnreadablePatternError(f"pattern {pattern_id!r} is stored unreadable")
        return pattern

    async def _delete_if(self, namespace: str, pattern_id: str, who: str, mode: str) -> bool:
        """Deletes what `who` reads under the id (mode "delete"), or who's
        version if expired (mode "purge"; who "" for the shared one)."""
        shared, log_key, _, sealed, owners = self._link.slot_keys(namespace, pattern_id, who)
        deleted = await self._link.script(
            "delete_pattern",
            f"deleting pattern {pattern_id!r}",
            self._delete,
            [shared, log_key, sealed, owners],
            [pattern_id, who, self._clock(), mode],
        )
        return bool(deleted)

    async def delete(self, namespace: str, pattern_id: str, *, viewer: str) -> bool:
        return await self._delete_if(namespace, pattern_id, viewer, "delete")

    async def purge_expired(self, counted: Purged | None = None) -> int:
        """Deletes expired patterns in Redis (what this replica's caught-up
        cache lists), then from the cache. Only what this call deleted is
        counted: another replica purging at once deletes the rest."""
        await self._cache.load()
        namespaces = await self._link.namespaces()
        for namespace in namespaces:
            await self._cache.catch_up(namespace)
        now = self._clock()
        _, index = self._cache.open_index()
        expired = await self._cache.run(lambda: index.expired_classified(now))
        classes: Counter[str] = Counter()
        for namespace, pattern_id, owner, classification in expired:
            deleted = await self._delete_if(namespace, pattern_id, owner, "purge")
            classes[classification] += int(deleted)
        for namespace in sorted({namespace for namespace, _, _, _ in expired}):
            await self._cache.catch_up(namespace)

        def purge_cache() -> int:
            # What a concurrent write made live again is fetched anew by the
            # next catch-up: its log entry comes after what the cache applied.
            with index.transaction():
                return index.purge(now)

        await self._cache.run(purge_cache)
        if counted is not None:
            for classification, count in classes.items():
                if count:
                    counted(classification, count)
        return sum(classes.values())

    async def reencrypt(
        self, progress: Callable[[int, int], None] | None = None
    ) -> tuple[int, int]:
        """Re-seals, in Redis, every envelope not under the active key (and
        seals a SENSITIVE pattern stored in plaintext by an older version)."""
        await self._cache.load()
        namespaces = await self._link.namespaces()
        for namespace in namespaces:
            await self._cache.catch_up(namespace)
        _, index = self._cache.open_index()
        sealed = await self._cache.run(index.sealed_ids)
        resealed = 0
        for done, (namespace, pattern_id, owner) in enumerate(sealed, start=1):
            resealed += await self._resealer.reseal(namespace, pattern_id, owner)
            if progress is not None:
                progress(done, len(sealed))
        for namespace in sorted({namespace for namespace, _, _ in sealed}):
            await self._cache.catch_up(namespace)
        return resealed, len(sealed)

    # --- reads ---------------------------------------------------------------------

    async def get(
        self, namespace: str, pattern_id: str, *, viewer: str
    ) -> memory_pb2.Pattern | None:
        # The viewer's own SENSITIVE version first, then the shared one.
        for key in (
            self._link.sealed_key(namespace, pattern_id, viewer),
            self._link.pattern_key(namespace, pattern_id),
        ):
            pattern = await self._get_at(namespace, pattern_id, key, viewer)
            if pattern is not None:
                return pattern
        return None

    async def _get_at(
        self, namespace: str, pattern_id: str, key: str, viewer: str
    ) -> memory_pb2.Pattern | None:
        body, sealed, guard, expires = await self._link.call(
            "get_pattern",
            f"reading pattern {pattern_id!r}",
            cast(
                Awaitable[list[bytes | None]],
                self._link.client.hmget(key, ["body", "sealed", "owner_guard", "expire_us"]),
            ),
        )
        if body is None or is_expired(int(expires or 0), self._clock()):
            return None
        if sealed == b"1" and text(guard or b"") != viewer:
            return None  # Not decrypted at all for anyone but the owner.
        pattern = self._decode(namespace, pattern_id, body, sealed == b"1")
        if is_sensitive(pattern) and pattern.owner != viewer:
            return None  # Stored in plaintext by an older version: still the owner's only.
        return pattern

    async def search(self, query: ReadQuery, *, viewer: str) -> tuple[list[Hit], int]:
        return await self._cache.read(
            query.namespace, lambda index: index.search(query, viewer=viewer)
        )

    async def page(self, query: PageQuery, *, viewer: str) -> tuple[list[memory_pb2.Pattern], int]:
        return await self._cache.read(
            query.namespace, lambda index: index.page(query, viewer=viewer)
        )

    async def count(
        self, namespace: str, condition: Node | None, group_by: str, *, viewer: str
    ) -> tuple[int, list[Group]]:
        return await self._cache.read(
            namespace, lambda index: index.count(namespace, condition, group_by, viewer=viewer)
        )

    async def vectors(
        self, namespace: str, condition: Node | None, *, viewer: str
    ) -> list[tuple[str, bytes]]:
        return await self._cache.read(
            namespace, lambda index: index.vectors(namespace, condition, viewer=viewer)
        )

    async def get_many(
        self, namespace: str, pattern_ids: list[str], *, viewer: str
    ) -> dict[str, memory_pb2.Pattern]:
        return await self._cache.read(
            namespace, lambda index: index.get_many(namespace, pattern_ids, viewer=viewer)
        )

    async def query_vocabulary(self, namespace: str, *, viewer: str) -> tuple[list[str], list[str]]:
        return await self._cache.read(
            namespace, lambda index: index.query_vocabulary(namespace, viewer=viewer)
        )
