"""The embedded backend: one SQLite file holding patterns and their index.

Every operation runs on one dedicated thread, so the connection is never
shared across threads and writes are serialised without extra locking. A
write commits with synchronous=FULL before it is acknowledged, so a search
that starts afterwards sees it.

SENSITIVE patterns are in the file only as envelopes sealed with the
keyring, and readable only by their owner, whose ids they are (see SecureIndex).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from attune.memory.v1 import memory_pb2
from memory_service.patterns import fingerprint
from memory_service.search.filter import Node
from memory_service.search.index import Group, Hit, PageQuery, ReadQuery
from memory_service.security.crypto import Keyring, MissingKeyError
from memory_service.servicekit.private_files import private_file
from memory_service.servicekit.sqlite import transaction
from memory_service.servicekit.tracing import TraceContext, carried, continued
from memory_service.store.base import PatternConflictError, Purged, PutOutcome
from memory_service.store.context import ContextItem, ContextOwnedError, now_us, visible
from memory_service.store.secure_index import SecureIndex, is_sensitive

T = TypeVar("T")

# `space` is the owner's user id for a private entry and "" for a shared one,
# so one owner's private entry and a shared entry under the same key coexist.
# The table of earlier versions (`contexts`) had no owner: its short-lived
# entries are dropped, because nobody may be assumed to own them.
CONTEXT_SCHEMA = """
DROP TABLE IF EXISTS contexts;
CREATE TABLE IF NOT EXISTS context_entries (
    namespace TEXT NOT NULL,
    session_id TEXT NOT NULL,
    space TEXT NOT NULL,
    key TEXT NOT NULL,
    owner TEXT NOT NULL,
    value TEXT NOT NULL,
    update_us INTEGER NOT NULL,
    expire_us INTEGER NOT NULL,
    PRIMARY KEY (namespace, session_id, space, key)
);
"""
# (namespace, pattern, replace, the caller's future, the caller's trace
# context: the writer thread does not inherit it, and sealing is spanned there)
_QueuedPut = tuple[str, memory_pb2.Pattern, bool, "asyncio.Future[PutOutcome]", TraceContext]


def stamped(namespace: str, pattern: memory_pb2.Pattern) -> memory_pb2.Pattern:
    """The pattern as stored: namespace, store time, and a default create time."""
    stored = memory_pb2.Pattern()
    stored.CopyFrom(pattern)
    stored.namespace = namespace
    now_us = time.time_ns() // 1000
    stored.store_time.FromMicroseconds(now_us)
    if not stored.HasField("create_time"):
        stored.create_time.FromMicroseconds(now_us)
    return stored


def conflicts(existing: memory_pb2.Pattern, owner: str) -> bool:
    """Whether a write by `owner` must not be answered with the pattern stored
    under its id: another user's SENSITIVE pattern is never returned as deduped."""
    return is_sensitive(existing) and existing.owner != owner


class EmbeddedStore:
    """PatternStore on a SQLite file under the data directory."""

    def __init__(
        self, data_dir: Path, keyring: Keyring, *, clock: Callable[[], int] = now_us
    ) -> None:
        self.path = data_dir / "patterns.sqlite3"
        self._keyring = keyring
        self._clock = clock
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._db: sqlite3.Connection | None = None
        self._index: SecureIndex | None = None
        self._queued: list[_QueuedPut] = []
        self._flusher: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Creates the file and schema if missing, and decrypts the sealed patterns.

        Raises MissingKeyError if sealed patterns exist but no key is
        configured, DecryptionError if one is sealed under a key that is not.
        """
        await self._run(self._open)

    def _open(self) -> None:
        # Owner-only before SQLite opens it: its -wal and -shm take its mode.
        db = sqlite3.connect(private_file(self.path), isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(CONTEXT_SCHEMA)
            self._index = SecureIndex(db, self._keyring, self._clock)
            self._index.warm()  # So no first search waits for its namespace's text index.
        except BaseException:
            db.close()
            raise
        self._db = db

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    def _open_index(self) -> tuple[sqlite3.Connection, SecureIndex]:
        if self._db is None or self._index is None:
            raise RuntimeError("store is not open")
        return self._db, self._index

    async def put(self, namespace: str, pattern: memory_pb2.Pattern, replace: bool) -> PutOutcome:
        # Group commit: puts that arrive while a commit is running share the
        # next transaction, so concurrent writers pay for one fsync, not one each.
        done: asyncio.Future[PutOutcome] = asyncio.get_running_loop().create_future()
        self._queued.append((namespace, pattern, replace, done, carried()))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await done

    async def _flush(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                outcomes = await self._run(functools.partial(self._write_batch, batch))
            except BaseException as error:  # The commit itself failed: nothing is stored.
                for _, _, _, done, _ in batch:
                    if not done.done():
                        done.set_exception(error)
                if isinstance(error, asyncio.CancelledError):
                    raise
                continue
            for (_, _, _, done, _), outcome in zip(batch, outcomes, strict=True):
                if done.done():
                    continue
                if isinstance(outcome, BaseException):
                    done.set_exception(outcome)
                else:
                    done.set_result(outcome)

    def _write_batch(self, batch: list[_QueuedPut]) -> list[PutOutcome | Exception]:
        """Applies the puts in order in one transaction; per-put conflicts stay per put.

        The owner check runs inside the transaction, so no write can slip
        between it and the put.
        """
        _, index = self._open_index()
        outcomes: list[PutOutcome | Exception] = []
        with index.transaction():
            for namespace, pattern, replace, _, trace_context in batch:
                digest = fingerprint(pattern)
                # Only what the writer sees: another owner's SENSITIVE pattern
                # under the id is neither met nor touched (ids are per owner).
                seen = index.visible(namespace, pattern.id, viewer=pattern.owner, for_write=True)
                same = [version for version in seen if version.fingerprint == digest]
                if same:
                    outcomes.append(PutOutcome(same[0].pattern, True, False))
                elif seen and not replace:
                    outcomes.append(PatternConflictError(pattern.id))
                else:
                    stored = stamped(namespace, pattern)
                    try:
                        with continued(trace_context):  # Changes nothing if it raises.
                            index.put(namespace, stored, digest)
                    except MissingKeyError as error:
                        outcomes.append(error)
                        continue
                    outcomes.append(PutOutcome(stored, False, bool(seen)))
        return outcomes

    async def get(
        self, namespace: str, pattern_id: str, *, viewer: str
    ) -> memory_pb2.Pattern | None:
        def work() -> memory_pb2.Pattern | None:
            stored = self._open_index()[1].get(namespace, pattern_id, viewer=viewer)
            return None if stored is None else stored.pattern

        return await self._run(work)

    async def delete(self, namespace: str, pattern_id: str, *, viewer: str) -> bool:
        def work() -> bool:
            _, index = self._open_index()
            with index.transaction():
                return index.delete(namespace, pattern_id, viewer=viewer)

        return await self._run(work)

    async def purge_expired(self, counted: Purged | None = None) -> int:
        def work() -> tuple[int, Counter[str]]:
            db, index = self._open_index()
            with index.transaction():
                # Expired context entries go too: otherwise one stays on disk
                # until its session is written again, which may be never.
                db.execute("DELETE FROM context_entries WHERE expire_us <= ?", (now_us(),))
                now = self._clock()
                # Read in the purge's transaction: exactly what it deletes.
                classes = Counter(found[3] for found in index.expired_classified(now))
                return index.purge(now), classes

        purged, classes = await self._run(work)
        if counted is not None:
            for classification, count in classes.items():
                counted(classification, count)
        return purged

    async def reencrypt(
        self, progress: Callable[[int, int], None] | None = None
    ) -> tuple[int, int]:
        def work() -> tuple[int, int]:
            _, index = self._open_index()
            with index.transaction():
                return index.reencrypt(progress)

        return await self._run(work)

    async def search(self, query: ReadQuery, *, viewer: str) -> tuple[list[Hit], int]:
        return await self._run(lambda: self._open_index()[1].search(query, viewer=viewer))

    async def page(self, query: PageQuery, *, viewer: str) -> tuple[list[memory_pb2.Pattern], int]:
        return await self._run(lambda: self._open_index()[1].page(query, viewer=viewer))

    async def count(
        self, namespace: str, condition: Node | None, group_by: str, *, viewer: str
    ) -> tuple[int, list[Group]]:
        return await self._run(
            lambda: self._open_index()[1].count(namespace, condition, group_by, viewer=viewer)
        )

    async def vectors(
        self, namespace: str, condition: Node | None, *, viewer: str
    ) -> list[tuple[str, bytes]]:
        return await self._run(
            lambda: self._open_index()[1].vectors(namespace, condition, viewer=viewer)
        )

    async def get_many(
        self, namespace: str, pattern_ids: list[str], *, viewer: str
    ) -> dict[str, memory_pb2.Pattern]:
        return await self._run(
            lambda: self._open_index()[1].get_many(namespace, pattern_ids, viewer=viewer)
        )

    async def query_vocabulary(self, namespace: str, *, viewer: str) -> tuple[list[str], list[str]]:
        return await self._run(
            lambda: self._open_index()[1].query_vocabulary(namespace, viewer=viewer)
        )

    # --- short-term context ----------------------------------------------------------

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
        def work() -> ContextItem:
            db, _ = self._open_index()
            now = now_us()
            item = ContextItem(key, value, now, now + int(ttl_seconds * 1e6), owner, shared)
            with transaction(db, immediate=True):
                # Expired entries of the session go as soon as it is written again.
                db.execute(
                    "DELETE FROM context_entries WHERE namespace = ? AND session_id = ? "
                    "AND expire_us <= ?",
                    (namespace, session_id, now),
                )
                holder = db.execute(
                    "SELECT owner FROM context_entries WHERE namespace = ? AND session_id = ? "
                    "AND space = '' AND key = ?",
                    (namespace, session_id, key),
                ).fetchone()
                if shared and holder is not None and holder[0] != owner:
                    raise ContextOwnedError(key)
                # The owner's entry under the other visibility moves, not doubles.
                db.execute(
                    "DELETE FROM context_entries WHERE namespace = ? AND session_id = ? "
                    "AND key = ? AND owner = ? AND space = ?",
                    (namespace, session_id, key, owner, owner if shared else ""),
                )
                db.execute(
                    "INSERT OR REPLACE INTO context_entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        namespace,
                        session_id,
                        "" if shared else owner,
                        key,
                        owner,
                        value,
                        item.update_us,
                        item.expire_us,
                    ),
                )
            return item

        return await self._run(work)

    async def get_context(
        self, namespace: str, session_id: str, key: str, *, viewer: str
    ) -> list[ContextItem]:
        def work() -> list[ContextItem]:
            db, _ = self._open_index()
            rows = db.execute(
                "SELECT key, value, update_us, expire_us, owner, space FROM context_entries "
                "WHERE namespace = ? AND session_id = ? AND space IN (?, '') "
                "AND (? = '' OR key = ?) AND expire_us > ?",
                (namespace, session_id, viewer, key, key, now_us()),
            ).fetchall()
            items = (
                ContextItem(str(k), str(v), int(u), int(e), str(o), s == "")
                for k, v, u, e, o, s in rows
            )
            return visible(items, viewer)

        return await self._run(work)

    async def delete_context(self, namespace: str, session_id: str, key: str, *, owner: str) -> int:
        def work() -> int:
            db, _ = self._open_index()
            cursor = db.execute(
                "DELETE FROM context_entries WHERE namespace = ? AND session_id = ? "
                "AND owner = ? AND space IN (?, '') AND (? = '' OR key = ?) AND expire_us > ?",
                (namespace, session_id, owner, owner, key, key, now_us()),
            )
            return cursor.rowcount

        return await self._run(work)

    async def ping(self) -> bool:
        def work() -> bool:
            db, _ = self._open_index()
            # Taking the write lock proves the file is there and writable.
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("ROLLBACK")
            except sqlite3.Error:
                return False
            return True

        return await self._run(work)

    async def close(self) -> None:
        if self._flusher is not None:
            await self._flusher  # Acknowledge or fail every queued write first.

        def work() -> None:
            if self._index is not None:
                self._index.close()
                self._index = None
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(work)
        self._thread.shutdown(wait=True)
