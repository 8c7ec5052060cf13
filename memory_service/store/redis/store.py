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
exists, so any read that starts later, on any replica, sees it (invariant
4). `get` reads Redis directly.

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

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import redis.exceptions as redis_errors
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from attune.memory.v1 import memory_pb2
from memory_service.patterns import fingerprint
from memory_service.search import index as search_index
from memory_service.search.filter import Node
from memory_service.search.index import (
    Group,
    Hit,
    ReadQuery,
    UnreadablePatternError,
    decode_pattern,
    expire_us,
    is_expired,
)
from memory_service.security.crypto import DecryptionError, Keyring, MissingKeyError
from memory_service.servicekit.private_files import private_file
from memory_service.store import secure_index
from memory_service.store.base import PatternConflictError, PutOutcome, StoreUnavailableError
from memory_service.store.context import ContextItem, ContextOwnedError, now_us, visible
from memory_service.store.embedded import conflicts, stamped
from memory_service.store.secure_index import (
    Current,
    SecureIndex,
    associated_data,
    is_sensitive,
)

T = TypeVar("T")

log = logging.getLogger("attune.memory.redis")

# Log entries read per round trip, and patterns fetched per round trip.
LOG_BATCH = 1000
FETCH_BATCH = 200
# Bumped when what the cache stores changes; the index schema is hashed in too.
CACHE_FORMAT = "4"
CACHE_FILE = "redis-index.sqlite3"

# Errors meaning "Redis cannot serve right now", as opposed to a bug.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # Also authentication failures and a loading replica.
    redis_errors.TimeoutError,
    redis_errors.ClusterError,  # Cluster down, master down.
    redis_errors.RedisClusterException,  # No reachable seed, slot not covered.
    redis_errors.TryAgainError,  # Resharding.
    redis_errors.ReadOnlyError,  # Writing to a replica after a failover.
    redis_errors.OutOfMemoryError,  # maxmemory reached with noeviction.
    OSError,
)

# The fields every script reads of a pattern hash, in this order.
_LUA_COMMON = """
local FIELDS = {'fingerprint', 'owner_guard', 'expire_us', 'body', 'sealed'}
local function live(found, now)
  if not found[1] then return false end
  local expire = tonumber(found[3] or '0')
  return not (expire > 0 and expire <= now)
end
local function sealed_key(base, owner, id)
  return base .. 'sealed:' .. #owner .. ':' .. owner .. ':' .. id
end
"""

# KEYS: shared pattern hash, log stream, namespace epoch, the writer's sealed
# hash, the id's owners set (all one namespace, so one hash tag and one slot).
# ARGV: id, body, fingerprint, replace (0/1), a new epoch in case the namespace has none,
# sealed (0/1), owner guard, expire_us, the writer, now (microseconds), the key base
# (`<prefix>:{<ns>}:`). The write sees the writer's own sealed version and the
# shared one, never another owner's: dedupe, conflict and replace apply to those.
# An expired version counts as absent.
PUT_SCRIPT = (
    _LUA_COMMON
    + """
local now = tonumber(ARGV[10])
local writer = ARGV[9]
local shared = redis.call('HMGET', KEYS[1], unpack(FIELDS))
local own = redis.call('HMGET', KEYS[4], unpack(FIELDS))
local legacy = shared[2] and shared[2] ~= '' and shared[2] or nil  -- sealed where shared goes
local own_at_shared = legacy == writer and not own[1]
if own_at_shared then own = shared end
local seen_own = live(own, now)
local seen_shared = not legacy and live(shared, now)
if seen_own and own[1] == ARGV[3] then
  return {'deduped', own[4], own[5] or '0'}
end
if seen_shared and shared[1] == ARGV[3] then
  return {'deduped', shared[4], shared[5] or '0'}
end
if (seen_own or seen_shared) and ARGV[4] ~= '1' then
  return {'conflict'}
end
local created = redis.call('SET', KEYS[3], ARGV[5], 'NX') and 1 or 0
local target = KEYS[1]
if ARGV[6] == '1' then
  target = KEYS[4]
  if seen_shared or own_at_shared then redis.call('DEL', KEYS[1]) end
  redis.call('SADD', KEYS[5], writer)
else
  if legacy and legacy ~= writer then
    redis.call('RENAME', KEYS[1], sealed_key(ARGV[11], legacy, ARGV[1]))
    redis.call('SADD', KEYS[5], legacy)
  end
  if own[1] and not own_at_shared then
    redis.call('DEL', KEYS[4])
    redis.call('SREM', KEYS[5], writer)
  end
end
redis.call('HSET', target, 'body', ARGV[2], 'fingerprint', ARGV[3], 'sealed', ARGV[6],
  'owner_guard', ARGV[7], 'expire_us', ARGV[8])
redis.call('XADD', KEYS[2], '*', 'op', 'put', 'id', ARGV[1], 'fingerprint', ARGV[3])
if seen_own or seen_shared then
  return {'replaced', created}
end
return {'stored', created}
"""
)

# KEYS: shared pattern hash, log stream, the sealed hash of ARGV[2], the id's owners set.
# ARGV: id, viewer (or, to purge, the owner of the version: "" for the shared one),
# now (microseconds), mode.
# Mode "delete": the live version the viewer reads first (their own sealed
# one, then the shared one). Mode "purge": that owner's version, only if
# expired, so replicas purging at once delete it once, and never a pattern
# written again since.
DELETE_SCRIPT = (
    _LUA_COMMON
    + """
local now = tonumber(ARGV[3])
local who = ARGV[2]
local function drop(key, sealed)
  redis.call('DEL', key)
  if sealed then redis.call('SREM', KEYS[4], who) end
  redis.call('XADD', KEYS[2], '*', 'op', 'delete', 'id', ARGV[1])
  return 1
end
local own = who ~= '' and redis.call('HMGET', KEYS[3], unpack(FIELDS)) or {false}
local shared = redis.call('HMGET', KEYS[1], unpack(FIELDS))
local shared_is_whos = shared[1] and (shared[2] or '') == who
if ARGV[4] == 'purge' then
  if own[1] and not live(own, now) then return drop(KEYS[3], true) end
  if shared_is_whos and not live(shared, now) then return drop(KEYS[1], false) end
  return 0
end
if live(own, now) then return drop(KEYS[3], true) end
if live(shared, now) and ((shared[2] or '') == '' or shared_is_whos) then
  return drop(KEYS[1], false)
end
return 0
"""
)

# KEYS: pattern hash, log stream. ARGV: id, the body as read, the new envelope,
# owner guard, expire_us. Compare-and-set: a write since the read wins. The
# logged put makes every replica's cache take the new envelope.
RESEAL_SCRIPT = """
if redis.call('HGET', KEYS[1], 'body') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'body', ARGV[3], 'sealed', '1', 'owner_guard', ARGV[4],
  'expire_us', ARGV[5])
local digest = redis.call('HGET', KEYS[1], 'fingerprint')
redis.call('XADD', KEYS[2], '*', 'op', 'put', 'id', ARGV[1], 'fingerprint', digest)
return 1
"""

# KEYS: log stream, namespace epoch. ARGV: first id (exclusive: "(<id>"), count.
# Returns the epoch (nil if none) and the entries, read at one instant.
LOG_SCRIPT = """
local epoch = redis.call('GET', KEYS[2])
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
return {epoch, entries}
"""

# KEYS: the entry, the session's key set. ARGV: the entry JSON, TTL in ms, the key.
# Redis expires the entry; the set lives as long as its longest entry.
# KEYS: the owner's private entry and its session set, the shared entry and
# its session set. ARGV: entry JSON, TTL ms, key, owner, "1" to share.
# Returns 0 (nothing written) when another owner's shared entry holds the key.
# The owner's entry under the other visibility moves rather than doubles.
SET_CONTEXT_SCRIPT = """
local held = redis.call('GET', KEYS[3])
local holder = held and cjson.decode(held)['o']
local mine, mine_set, gone, gone_set = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if ARGV[5] == '1' then
  if holder and holder ~= ARGV[4] then return 0 end
  mine, mine_set, gone, gone_set = KEYS[3], KEYS[4], KEYS[1], KEYS[2]
elseif holder ~= ARGV[4] then
  gone = nil
end
redis.call('SET', mine, ARGV[1], 'PX', ARGV[2])
redis.call('SADD', mine_set, ARGV[3])
local left = redis.call('PTTL', mine_set)
if left < tonumber(ARGV[2]) then redis.call('PEXPIRE', mine_set, ARGV[2]) end
if gone then
  redis.call('DEL', gone)
  redis.call('SREM', gone_set, ARGV[3])
end
return 1
"""

# KEYS: entries, then their session set last. ARGV: owner, then each entry's key.
# Deletes the entries the owner holds; returns how many.
DELETE_CONTEXT_SCRIPT = """
local deleted = 0
local set = KEYS[#KEYS]
for i = 1, #KEYS - 1 do
  local raw = redis.call('GET', KEYS[i])
  if raw and cjson.decode(raw)['o'] == ARGV[1] then
    redis.call('DEL', KEYS[i])
    redis.call('SREM', set, ARGV[i + 1])
    deleted = deleted + 1
  end
end
return deleted
"""

# KEYS: shared pattern hashes (one namespace, so one slot). ARGV: the key base, then
# the ids of KEYS. Returns, per id, every version under it: [body, fingerprint,
# sealed, owner guard] each (the shared one, then each owner's sealed one).
FETCH_SCRIPT = (
    _LUA_COMMON
    + """
local found = {}
for i, key in ipairs(KEYS) do
  local id = ARGV[i + 1]
  local versions = {}
  local shared = redis.call('HMGET', key, 'body', 'fingerprint', 'sealed', 'owner_guard')
  if shared[1] then versions[#versions + 1] = shared end
  for _, owner in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'owners:' .. id)) do
    local own = redis.call('HMGET', sealed_key(ARGV[1], owner, id), 'body', 'fingerprint',
      'sealed', 'owner_guard')
    if own[1] then versions[#versions + 1] = own end
  end
  found[i] = versions
end
return found
"""
)

CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS redis_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS redis_applied (
    namespace TEXT PRIMARY KEY, epoch TEXT NOT NULL, last_id TEXT NOT NULL
);
"""


def _cache_version() -> str:
    schemas = search_index.SCHEMA + secure_index.SEALED_SCHEMA
    return f"{CACHE_FORMAT}:{hashlib.sha256(schemas.encode()).hexdigest()[:16]}"


class _OutdatedCacheError(Exception):
    """The cache file was written by another version of this store or index."""


def _stream_id(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(raw: list[bytes]) -> dict[bytes, bytes]:
    """A stream entry's flat [field, value, ...] list (as a script returns it) as a dict."""
    return dict(zip(raw[::2], raw[1::2], strict=True))


@dataclass(frozen=True)
class RedisOptions:
    """How to reach Redis and how patiently."""

    url: str = "redis://127.0.0.1:6379/0"
    cluster_nodes: tuple[str, ...] = ()
    password: str | None = None
    timeout_seconds: float = 1.0
    retries: int = 2
    key_prefix: str = "attune"


@dataclass(frozen=True)
class _Script:
    """A Lua script and its SHA1, for EVALSHA."""

    text: str
    sha: str = ""

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.text.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)


@dataclass(frozen=True)
class _Applied:
    """What the cache holds of a namespace: which epoch, up to which log entry."""

    epoch: str
    last_id: str


@dataclass
class _Sync:
    """A namespace's catch-up state: one catch-up at a time, and when the last began."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    synced_tick: int = -1


class RedisStore:
    """PatternStore on Redis (standalone or Cluster) with a local search cache."""

    def __init__(
        self,
        data_dir: Path,
        options: RedisOptions,
        keyring: Keyring,
        *,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.path = data_dir / CACHE_FILE
        self.options = options
        self._keyring = keyring
        self._clock = clock
        self.where = _describe(options)
        self._client: Redis | RedisCluster = _client(options)
        self._namespaces_key = f"{options.key_prefix}:namespaces"
        self._put = _Script(PUT_SCRIPT)
        self._delete = _Script(DELETE_SCRIPT)
        self._log = _Script(LOG_SCRIPT)
        self._fetch = _Script(FETCH_SCRIPT)
        self._reseal_script = _Script(RESEAL_SCRIPT)
        self._set_context = _Script(SET_CONTEXT_SCRIPT)
        self._delete_context = _Script(DELETE_CONTEXT_SCRIPT)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="redis-cache")
        self._db: sqlite3.Connection | None = None
        self._index: SecureIndex | None = None
        # Changed only on the cache thread, under the namespace's lock.
        self._applied: dict[str, _Applied] = {}
        self._syncs: dict[str, _Sync] = {}
        self._ticks = itertools.count()
        self._registered: set[str] = set()
        self._loaded = False
        self._load_lock = asyncio.Lock()

    # --- keys ----------------------------------------------------------------------

    def _key(self, namespace: str, name: str) -> str:
        return f"{self.options.key_prefix}:{{{namespace}}}:{name}"

    def _pattern_key(self, namespace: str, pattern_id: str) -> str:
        return self._key(namespace, f"pattern:{pattern_id}")

    def _sealed_key(self, namespace: str, pattern_id: str, owner: str) -> str:
        """The owner's SENSITIVE pattern under the id (the owner's length in
        bytes first, as Lua's #: no owner and id pair names another's key)."""
        return self._key(namespace, f"sealed:{len(owner.encode())}:{owner}:{pattern_id}")

    def _slot_keys(self, namespace: str, pattern_id: str, owner: str) -> list[str]:
        """The keys the put and delete scripts take: shared hash, log, epoch,
        the owner's sealed hash, the id's owners set."""
        return [
            self._pattern_key(namespace, pattern_id),
            self._key(namespace, "log"),
            self._key(namespace, "epoch"),
            self._sealed_key(namespace, pattern_id, owner),
            self._key(namespace, f"owners:{pattern_id}"),
        ]

    # --- plumbing ------------------------------------------------------------------

    async def _redis(self, doing: str, call: Awaitable[T]) -> T:
        """Awaits a Redis call; unreachability becomes StoreUnavailableError."""
        try:
            return await call
        except UNAVAILABLE_ERRORS as error:
            detail = str(error) or type(error).__name__
            raise StoreUnavailableError(
                f"the pattern store (Redis at {self.where}) is unavailable while {doing}: {detail}"
            ) from error

    async def _script(self, doing: str, script: _Script, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA, or EVAL where the node does not have the script yet.

        EVAL goes to the node owning the keys and caches the script there;
        redis-py's own fallback (SCRIPT LOAD) goes to every primary of a
        cluster, so it fails while any one of them is down.
        """

        async def call() -> Any:
            client = cast(Redis, self._client)  # Same script commands on both clients.
            try:
                return await cast(
                    Awaitable[Any], client.evalsha(script.sha, len(keys), *keys, *args)
                )
            except redis_errors.NoScriptError:
                return await cast(Awaitable[Any], client.eval(script.text, len(keys), *keys, *args))

        return await self._redis(doing, call())

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    def _open_index(self) -> tuple[sqlite3.Connection, SecureIndex]:
        if self._db is None or self._index is None:
            raise RuntimeError("store is not open")
        return self._db, self._index

    # --- the cache file ------------------------------------------------------------

    def _open_cache(self) -> None:
        """Opens the cache file, or starts a new one when it cannot be used.

        Unusable: corrupt, outdated, or holding an envelope under a key this
        replica lacks (Redis has them re-sealed once `reencrypt` ran; if it
        does not, the replay fails with the same DecryptionError). A cache
        with sealed patterns and no key at all is a MissingKeyError, as is
        Redis holding them.
        """
        try:
            self._connect_cache()
        except (sqlite3.DatabaseError, _OutdatedCacheError, DecryptionError) as error:
            log.warning(
                "search cache unusable; rebuilding it from Redis",
                extra={"path": str(self.path), "error": str(error) or type(error).__name__},
            )
            self._close_cache()
            # The files go whole (rather than dropping tables), so nothing of
            # an older cache's plaintext stays in their pages.
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            try:
                self._connect_cache()
            except BaseException:
                self._close_cache()
                raise
        except BaseException:
            self._close_cache()
            raise

    def _connect_cache(self) -> None:
        # Owner-only before SQLite opens it: its -wal and -shm take its mode.
        db = sqlite3.connect(private_file(self.path), isolation_level=None, check_same_thread=False)
        self._db = db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")  # A cache: Redis has every write.
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("quick_check failed")
        db.execute("CREATE TABLE IF NOT EXISTS redis_meta (key TEXT PRIMARY KEY, value TEXT)")
        row = db.execute("SELECT value FROM redis_meta WHERE key = 'version'").fetchone()
        if row is not None and row[0] != _cache_version():
            raise _OutdatedCacheError(
                f"cache version {row[0]}, this store writes {_cache_version()}"
            )
        db.executescript(CACHE_SCHEMA)
        db.execute(
            "INSERT OR REPLACE INTO redis_meta (key, value) VALUES ('version', ?)",
            (_cache_version(),),
        )
        self._index = SecureIndex(db, self._keyring, self._clock)
        self._applied = {
            str(namespace): _Applied(str(epoch), str(last_id))
            for namespace, epoch, last_id in db.execute(
                "SELECT namespace, epoch, last_id FROM redis_applied"
            )
        }

    def _close_cache(self) -> None:
        if self._index is not None:
            self._index.close()
        if self._db is not None:
            self._db.close()
        self._db = None
        self._index = None

    # --- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        """Opens the cache and loads every namespace from Redis.

        If Redis cannot be reached yet, the store opens anyway: ping() stays
        False (so readiness stays NOT_SERVING) until it has loaded. Raises
        MissingKeyError if sealed patterns exist but no key is configured,
        DecryptionError if one is sealed under a key that is not.
        """
        await self._run(self._open_cache)
        try:
            await self._load()
        except StoreUnavailableError as error:
            log.warning("Redis unavailable at startup; not ready until it answers: %s", error)

    async def _load(self) -> None:
        """Catches up every namespace Redis knows, once."""
        async with self._load_lock:
            if self._loaded:
                return
            started = time.perf_counter()
            members = await self._redis(
                "listing namespaces",
                cast(Awaitable[set[bytes]], self._client.smembers(self._namespaces_key)),
            )
            namespaces = sorted(_text(member) for member in members)
            applied = 0
            for namespace in namespaces:
                applied += await self._catch_up(namespace)
            self._loaded = True
            log.info(
                "search cache loaded from Redis",
                extra={
                    "namespaces": len(namespaces),
                    "entries_applied": applied,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )

    async def ping(self) -> bool:
        try:
            if isinstance(self._client, RedisCluster):
                if not await self._cluster_ok():
                    return False
            else:
                await self._redis("pinging", cast(Awaitable[bool], self._client.ping()))
            await self._load()
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
        assert isinstance(self._client, RedisCluster)
        info = await self._redis(
            "checking the cluster",
            cast(
                Awaitable[dict[str, Any]],
                self._client.cluster_info(target_nodes=RedisCluster.PRIMARIES),
            ),
        )
        by_node = {"": info} if "cluster_state" in info else info
        states = {node: fields.get("cluster_state") for node, fields in by_node.items()}
        if any(state != "ok" for state in states.values()):
            log.debug("Redis Cluster is not ok: %s", states)
            return False
        return True

    async def close(self) -> None:
        with contextlib.suppress(*UNAVAILABLE_ERRORS):
            await self._client.aclose()
        await self._run(self._close_cache)
        self._thread.shutdown(wait=True)

    # --- catching up ---------------------------------------------------------------

    def _sync(self, namespace: str) -> _Sync:
        state = self._syncs.get(namespace)
        if state is None:
            state = self._syncs[namespace] = _Sync()
        return state

    async def _catch_up(self, namespace: str) -> int:
        """Applies the namespace's log entries written since the last catch-up.

        Concurrent readers share work: a reader that waited for the lock
        skips its own pass if a pass that began after it arrived has finished.
        """
        state = self._sync(namespace)
        arrival = next(self._ticks)
        async with state.lock:
            if state.synced_tick > arrival:
                return 0
            began = next(self._ticks)
            applied = 0
            while True:
                known = self._applied.get(namespace)
                after = known.last_id if known is not None else "0-0"
                raw_epoch, entries = await self._script(
                    f"reading the log of namespace {namespace!r}",
                    self._log,
                    [self._key(namespace, "log"), self._key(namespace, "epoch")],
                    [f"({after}", LOG_BATCH],
                )
                epoch = "" if raw_epoch is None else _text(raw_epoch)
                if known is not None and known.epoch != epoch:
                    # Redis lost this namespace's data (or was told to rebuild): replay.
                    log.warning(
                        "namespace data changed in Redis; rebuilding its cache",
                        extra={"namespace": namespace},
                    )
                    await self._run(partial(self._drop, namespace))
                    self._registered.discard(namespace)
                    continue
                if not entries:
                    break
                ids = list(dict.fromkeys(_text(_fields(raw)[b"id"]) for _, raw in entries))
                found = await self._fetch_current(namespace, ids)
                last = _text(entries[-1][0])
                await self._run(partial(self._apply, namespace, epoch, last, found))
                applied += len(entries)
                if len(entries) < LOG_BATCH:
                    break
            state.synced_tick = began
            return applied

    async def _fetch_current(self, namespace: str, ids: list[str]) -> dict[str, list[Current]]:
        """Every version under each id now: body (or envelope), fingerprint,
        and owner when sealed; none if deleted."""
        found: dict[str, list[Current]] = {}
        for start in range(0, len(ids), FETCH_BATCH):
            chunk = ids[start : start + FETCH_BATCH]
            rows = await self._script(
                f"reading patterns of namespace {namespace!r}",
                self._fetch,
                [self._pattern_key(namespace, pattern_id) for pattern_id in chunk],
                [self._key(namespace, ""), *chunk],
            )
            for pattern_id, versions in zip(chunk, rows, strict=True):
                found[pattern_id] = [
                    Current(bytes(body), _text(digest), sealed == b"1", _text(guard or b""))
                    for body, digest, sealed, guard in versions
                ]
        return found

    def _apply(
        self, namespace: str, epoch: str, last_id: str, found: dict[str, list[Current]]
    ) -> None:
        """Indexes the current state of the given patterns, in one transaction."""
        db, index = self._open_index()
        with index.transaction():
            for pattern_id, current in found.items():
                index.sync(namespace, pattern_id, current)
            known = self._applied.get(namespace)
            if known is not None:  # Never move back (a cancelled pass may finish late).
                last_id = max(known.last_id, last_id, key=_stream_id)
            db.execute(
                "INSERT OR REPLACE INTO redis_applied (namespace, epoch, last_id) VALUES (?, ?, ?)",
                (namespace, epoch, last_id),
            )
        self._applied[namespace] = _Applied(epoch, last_id)

    def _drop(self, namespace: str) -> None:
        """Forgets everything cached of a namespace."""
        db, index = self._open_index()
        with index.transaction():
            index.drop_namespace(namespace)
            db.execute("DELETE FROM redis_applied WHERE namespace = ?", (namespace,))
        self._applied.pop(namespace, None)

    async def _read(self, namespace: str, work: Callable[[SecureIndex], T]) -> T:
        """Catches the namespace up, then reads the cache."""
        await self._catch_up(namespace)
        return await self._run(lambda: work(self._open_index()[1]))

    # --- writes --------------------------------------------------------------------

    async def _register(self, namespace: str) -> None:
        await self._redis(
            "registering the namespace",
            cast(Awaitable[int], self._client.sadd(self._namespaces_key, namespace)),
        )
        self._registered.add(namespace)

    async def put(self, namespace: str, pattern: memory_pb2.Pattern, replace: bool) -> PutOutcome:
        digest = fingerprint(pattern)
        stored = stamped(namespace, pattern)
        sealed = is_sensitive(stored)
        body = stored.SerializeToString()
        if sealed:  # MissingKeyError here, before anything is written.
            body = self._keyring.encrypt(body, associated_data(namespace, pattern.id))
        if namespace not in self._registered:
            await self._register(namespace)
        result = await self._script(
            f"storing pattern {pattern.id!r}",
            self._put,
            self._slot_keys(namespace, pattern.id, pattern.owner),
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
                self._key(namespace, ""),
            ],
        )
        status = _text(result[0])
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
        shared, log_key, _, sealed, owners = self._slot_keys(namespace, pattern_id, who)
        deleted = await self._script(
            f"deleting pattern {pattern_id!r}",
            self._delete,
            [shared, log_key, sealed, owners],
            [pattern_id, who, self._clock(), mode],
        )
        return bool(deleted)

    async def delete(self, namespace: str, pattern_id: str, *, viewer: str) -> bool:
        return await self._delete_if(namespace, pattern_id, viewer, "delete")

    async def _namespaces(self) -> list[str]:
        members = await self._redis(
            "listing namespaces",
            cast(Awaitable[set[bytes]], self._client.smembers(self._namespaces_key)),
        )
        return sorted(_text(member) for member in members)

    async def purge_expired(self) -> int:
        """Deletes expired patterns in Redis (what this replica's caught-up
        cache lists), then from the cache."""
        await self._load()
        namespaces = await self._namespaces()
        for namespace in namespaces:
            await self._catch_up(namespace)
        now = self._clock()
        _, index = self._open_index()
        expired = await self._run(lambda: index.expired(now))
        purged = 0
        for namespace, pattern_id, owner in expired:
            purged += await self._delete_if(namespace, pattern_id, owner, "purge")
        for namespace in sorted({namespace for namespace, _, _ in expired}):
            await self._catch_up(namespace)

        def purge_cache() -> int:
            # What a concurrent write made live again is fetched anew by the
            # next catch-up: its log entry comes after what the cache applied.
            with index.transaction():
                return index.purge(now)

        await self._run(purge_cache)
        return purged

    async def reencrypt(
        self, progress: Callable[[int, int], None] | None = None
    ) -> tuple[int, int]:
        """Re-seals, in Redis, every envelope not under the active key (and
        seals a SENSITIVE pattern stored in plaintext by an older version)."""
        await self._load()
        namespaces = await self._namespaces()
        for namespace in namespaces:
            await self._catch_up(namespace)
        _, index = self._open_index()
        sealed = await self._run(index.sealed_ids)
        resealed = 0
        for done, (namespace, pattern_id, owner) in enumerate(sealed, start=1):
            resealed += await self._reseal(namespace, pattern_id, owner)
            if progress is not None:
                progress(done, len(sealed))
        for namespace in sorted({namespace for namespace, _, _ in sealed}):
            await self._catch_up(namespace)
        return resealed, len(sealed)

    async def _reseal(self, namespace: str, pattern_id: str, owner: str) -> bool:
        """Re-seals the owner's SENSITIVE pattern under the id if it needs it
        (at its own key, or where a version before per-owner ids kept it).

        Compare-and-set: if a write lands between the read and the set,
        reads again (the write may have sealed it under the active key).
        """
        for key in (
            self._sealed_key(namespace, pattern_id, owner),
            self._pattern_key(namespace, pattern_id),
        ):
            if await self._reseal_at(namespace, pattern_id, owner, key):
                return True
        return False

    async def _reseal_at(self, namespace: str, pattern_id: str, owner: str, key: str) -> bool:
        for _ in range(5):
            body, flag = await self._redis(
                f"reading pattern {pattern_id!r}",
                cast(Awaitable[list[bytes | None]], self._client.hmget(key, ["body", "sealed"])),
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
            swapped = await self._script(
                f"re-sealing pattern {pattern_id!r}",
                self._reseal_script,
                [key, self._key(namespace, "log")],
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

    # --- reads ---------------------------------------------------------------------

    # --- short-term context ----------------------------------------------------------
    # An entry is one string key with a Redis TTL; a set lists a session's keys
    # of one space: an owner's private entries, or the session's shared ones
    # (see store/context.py). All share the namespace's hash tag, so Cluster
    # keeps them on one node. Keys of earlier versions (`ctx:`, `ctxkeys:`)
    # had no owner: nothing reads them, and they expire with their TTL.

    def _context_key(self, namespace: str, session_id: str, space: str, key: str) -> str:
        # Lengths first: no (space, session, key) can name another's entry.
        return self._key(
            namespace, f"ctxe:{len(space)}:{space}:{len(session_id)}:{session_id}:{key}"
        )

    def _context_keys(self, namespace: str, session_id: str, space: str) -> str:
        return self._key(namespace, f"ctxs:{len(space)}:{space}:{session_id}")

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
        written = await self._script(
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
        entries = await self._redis(
            "reading context",
            cast(
                Awaitable[list[bytes | None]],
                self._client.mget(
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
        members = await self._redis(
            "listing context",
            cast(
                Awaitable[set[bytes]],
                self._client.smembers(self._context_keys(namespace, session_id, space)),
            ),
        )
        return [_text(member) for member in members]

    async def delete_context(self, namespace: str, session_id: str, key: str, *, owner: str) -> int:
        deleted = 0
        for space in (owner, ""):
            names = [key] if key else await self._session_keys(namespace, session_id, space)
            if not names:
                continue
            deleted += int(
                await self._script(
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

    async def get(
        self, namespace: str, pattern_id: str, *, viewer: str
    ) -> memory_pb2.Pattern | None:
        # The viewer's own SENSITIVE version first, then the shared one.
        for key in (
            self._sealed_key(namespace, pattern_id, viewer),
            self._pattern_key(namespace, pattern_id),
        ):
            pattern = await self._get_at(namespace, pattern_id, key, viewer)
            if pattern is not None:
                return pattern
        return None

    async def _get_at(
        self, namespace: str, pattern_id: str, key: str, viewer: str
    ) -> memory_pb2.Pattern | None:
        body, sealed, guard, expires = await self._redis(
            f"reading pattern {pattern_id!r}",
            cast(
                Awaitable[list[bytes | None]],
                self._client.hmget(key, ["body", "sealed", "owner_guard", "expire_us"]),
            ),
        )
        if body is None or is_expired(int(expires or 0), self._clock()):
            return None
        if sealed == b"1" and _text(guard or b"") != viewer:
            return None  # Not decrypted at all for anyone but the owner.
        pattern = self._decode(namespace, pattern_id, body, sealed == b"1")
        if is_sensitive(pattern) and pattern.owner != viewer:
            return None  # Stored in plaintext by an older version: still the owner's only.
        return pattern

    async def search(self, query: ReadQuery, *, viewer: str) -> tuple[list[Hit], int]:
        return await self._read(query.namespace, lambda index: index.search(query, viewer=viewer))

    async def page(
        self,
        namespace: str,
        condition: Node | None,
        order_by: list[tuple[str, bool]],
        limit: int,
        offset: int,
        *,
        viewer: str,
    ) -> tuple[list[memory_pb2.Pattern], int]:
        return await self._read(
            namespace,
            lambda index: index.page(namespace, condition, order_by, limit, offset, viewer=viewer),
        )

    async def count(
        self, namespace: str, condition: Node | None, group_by: str, *, viewer: str
    ) -> tuple[int, list[Group]]:
        return await self._read(
            namespace, lambda index: index.count(namespace, condition, group_by, viewer=viewer)
        )

    async def vectors(
        self, namespace: str, condition: Node | None, *, viewer: str
    ) -> list[tuple[str, bytes]]:
        return await self._read(
            namespace, lambda index: index.vectors(namespace, condition, viewer=viewer)
        )

    async def get_many(
        self, namespace: str, pattern_ids: list[str], *, viewer: str
    ) -> dict[str, memory_pb2.Pattern]:
        return await self._read(
            namespace, lambda index: index.get_many(namespace, pattern_ids, viewer=viewer)
        )

    async def query_vocabulary(self, namespace: str, *, viewer: str) -> tuple[list[str], list[str]]:
        return await self._read(
            namespace, lambda index: index.query_vocabulary(namespace, viewer=viewer)
        )


def _client(options: RedisOptions) -> Redis | RedisCluster:
    """A client with short timeouts and redis-py's retry with jittered backoff."""
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), options.retries)
    common: dict[str, Any] = {
        "socket_timeout": options.timeout_seconds,
        "socket_connect_timeout": options.timeout_seconds,
        "retry": retry,
        "health_check_interval": 30,
    }
    if options.password is not None:
        common["password"] = options.password
    if options.cluster_nodes:
        seeds = [ClusterNode(*_host_port(node)) for node in options.cluster_nodes]
        return RedisCluster(startup_nodes=seeds, **common)
    return Redis.from_url(options.url, **common)


def _host_port(node: str) -> tuple[str, int]:
    host, separator, port = node.strip().rpartition(":")
    if not separator or not host or not port.isdigit():
        raise ValueError(f"Redis cluster node {node!r} is not host:port")
    return host.strip("[]"), int(port)


def _describe(options: RedisOptions) -> str:
    """Where Redis is, without credentials, for messages."""
    if options.cluster_nodes:
        return "cluster " + ",".join(node.strip() for node in options.cluster_nodes)
    scheme, _, rest = options.url.partition("://")
    address = rest.partition("?")[0].rpartition("@")[2]  # No user, password or options.
    return f"{scheme}://{address}" if rest else "(an unparsable URL)"
