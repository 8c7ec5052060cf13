"""The replica's local search cache: a SQLite file that follows Redis's change logs.

A cache, so `synchronous=OFF`: Redis has every write. It records, per
namespace, the epoch it describes and the id of the last log entry it
applied; `catch_up` applies the entries after that id (or replays the
namespace when its epoch changed). A missing, corrupt or outdated file is
rebuilt from the logs (see store.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar, cast

from memory_service import metrics
from memory_service.search import index as search_index
from memory_service.security.crypto import DecryptionError, Keyring
from memory_service.servicekit.sqlite import (
    open_cache_file,
    read_stamp,
    remove_cache_file,
    write_stamp,
)
from memory_service.store import secure_index
from memory_service.store.redis.link import RedisLink, fields, text
from memory_service.store.redis.scripts import FETCH_SCRIPT, LOG_SCRIPT, Script
from memory_service.store.secure_index import Current, SecureIndex

T = TypeVar("T")

log = logging.getLogger("attune.memory.redis")

# Log entries read per round trip, and patterns fetched per round trip.
LOG_BATCH = 1000
FETCH_BATCH = 200
# Bumped when what the cache stores changes; the index schema is hashed in too.
CACHE_FORMAT = "4"
CACHE_FILE = "redis-index.sqlite3"

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


class ReplicaCache:
    """This replica's search cache of every namespace in Redis.

    Every use of the SQLite file runs on one thread (`run`).
    """

    def __init__(
        self, data_dir: Path, link: RedisLink, keyring: Keyring, clock: Callable[[], int]
    ) -> None:
        self.path = data_dir / CACHE_FILE
        self._link = link
        self._keyring = keyring
        self._clock = clock
        self._log = Script(LOG_SCRIPT)
        self._fetch = Script(FETCH_SCRIPT)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="redis-cache")
        self._db: sqlite3.Connection | None = None
        self._index: SecureIndex | None = None
        # Changed only on the cache thread, under the namespace's lock.
        self._applied: dict[str, _Applied] = {}
        self._syncs: dict[str, _Sync] = {}
        self._ticks = itertools.count()
        # Namespaces this replica knows are listed in Redis (writes list new ones).
        self.registered: set[str] = set()
        self._loaded = False
        self._load_lock = asyncio.Lock()

    async def run(self, work: Callable[[], T]) -> T:
        """Runs work on the cache's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    def open_index(self) -> tuple[sqlite3.Connection, SecureIndex]:
        if self._db is None or self._index is None:
            raise RuntimeError("store is not open")
        return self._db, self._index

    async def open(self) -> None:
        await self.run(self._open_cache)

    async def close(self) -> None:
        await self.run(self._close_cache)
        self._thread.shutdown(wait=True)

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
            remove_cache_file(self.path)
            try:
                self._connect_cache()
            except BaseException:
                self._close_cache()
                raise
        except BaseException:
            self._close_cache()
            raise

    def _connect_cache(self) -> None:
        # A cache: Redis has every write.
        db = open_cache_file(self.path, synchronous="OFF", check="quick_check")
        self._db = db
        written = read_stamp(db, "redis_meta").get("version")
        if written is not None and written != _cache_version():
            raise _OutdatedCacheError(
                f"cache version {written}, this store writes {_cache_version()}"
            )
        db.executescript(CACHE_SCHEMA)
        write_stamp(db, "redis_meta", {"version": _cache_version()})
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

    async def load(self) -> None:
        """Catches up every namespace Redis knows, once."""
        async with self._load_lock:
            if self._loaded:
                return
            started = time.perf_counter()
            members = await self._link.call(
                "list_namespaces",
                "listing namespaces",
                cast(Awaitable[set[bytes]], self._link.client.smembers(self._link.namespaces_key)),
            )
            namespaces = sorted(text(member) for member in members)
            applied = 0
            for namespace in namespaces:
                applied += await self.catch_up(namespace)
            self._loaded = True
            log.info(
                "search cache loaded from Redis",
                extra={
                    "namespaces": len(namespaces),
                    "entries_applied": applied,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )

    def _sync(self, namespace: str) -> _Sync:
        state = self._syncs.get(namespace)
        if state is None:
            state = self._syncs[namespace] = _Sync()
        return state

    async def catch_up(self, namespace: str) -> int:
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
            oldest_ms: int | None = None  # When the first change applied was written.
            while True:
                known = self._applied.get(namespace)
                after = known.last_id if known is not None else "0-0"
                raw_epoch, entries = await self._link.script(
                    "read_log",
                    f"reading the log of namespace {namespace!r}",
                    self._log,
                    [self._link.key(namespace, "log"), self._link.key(namespace, "epoch")],
                    [f"({after}", LOG_BATCH],
                )
                epoch = "" if raw_epoch is None else text(raw_epoch)
                if known is not None and known.epoch != epoch:
                    # Redis lost this namespace's data (or was told to rebuild): replay.
                    log.warning(
                        "namespace data changed in Redis; rebuilding its cache",
                        extra={"namespace": namespace},
                    )
                    await self.run(partial(self._drop, namespace))
                    self.registered.discard(namespace)
                    continue
                if not entries:
                    break
                if oldest_ms is None:
                    oldest_ms = _stream_id(text(entries[0][0]))[0]
                ids = list(dict.fromkeys(text(fields(raw)[b"id"]) for _, raw in entries))
                found = await self._fetch_current(namespace, ids)
                last = text(entries[-1][0])
                await self.run(partial(self._apply, namespace, epoch, last, found))
                applied += len(entries)
                if len(entries) < LOG_BATCH:
                    break
            state.synced_tick = began
            # Entry ids are Redis's clock in milliseconds: how long the oldest
            # change waited for this cache (clocks apart by a little read 0).
            lag = 0.0 if oldest_ms is None else time.time() - oldest_ms / 1000
            metrics.CACHE_CATCH_UP.caught_up(namespace, lag)
            return applied

    async def _fetch_current(self, namespace: str, ids: list[str]) -> dict[str, list[Current]]:
        """Every version under each id now: body (or envelope), fingerprint,
        and owner when sealed; none if deleted."""
        found: dict[str, list[Current]] = {}
        for start in range(0, len(ids), FETCH_BATCH):
            chunk = ids[start : start + FETCH_BATCH]
            rows = await self._link.script(
                "fetch_patterns",
                f"reading patterns of namespace {namespace!r}",
                self._fetch,
                [self._link.pattern_key(namespace, pattern_id) for pattern_id in chunk],
                [self._link.key(namespace, ""), *chunk],
            )
            for pattern_id, versions in zip(chunk, rows, strict=True):
                found[pattern_id] = [
                    Current(bytes(body), text(digest), sealed == b"1", text(guard or b""))
                    for body, digest, sealed, guard in versions
                ]
        return found

    def _apply(
        self, namespace: str, epoch: str, last_id: str, found: dict[str, list[Current]]
    ) -> None:
        """Indexes the current state of the given patterns, in one transaction."""
        db, index = self.open_index()
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
        db, index = self.open_index()
        with index.transaction():
            index.drop_namespace(namespace)
            db.execute("DELETE FROM redis_applied WHERE namespace = ?", (namespace,))
        self._applied.pop(namespace, None)

    async def read(self, namespace: str, work: Callable[[SecureIndex], T]) -> T:
        """Catches the namespace up, then reads the cache."""
        await self.catch_up(namespace)
        return await self.run(lambda: work(self.open_index()[1]))
