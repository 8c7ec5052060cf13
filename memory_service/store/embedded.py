"""The embedded backend: one SQLite file, patterns and their text index.

Every operation runs on one dedicated thread, so the connection is never
shared across threads and writes are serialised without extra locking. A
write commits with synchronous=FULL before it is acknowledged.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from attune.memory.v1 import memory_pb2
from memory_service.patterns import fingerprint
from memory_service.search.documents import searchable_text
from memory_service.search.query import Term
from memory_service.search.text_index import TextIndex
from memory_service.store.base import PatternConflictError, PutOutcome

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS patterns (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    body BLOB NOT NULL,
    create_time_us INTEGER NOT NULL,
    PRIMARY KEY (namespace, id)
);
"""


class EmbeddedStore:
    """PatternStore on a SQLite file under the data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "patterns.sqlite3"
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._db: sqlite3.Connection | None = None
        self._index: TextIndex | None = None

    async def open(self) -> None:
        """Creates the file and schema if missing."""
        await self._run(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        self._db = db
        self._index = TextIndex(db)

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    def _conn(self) -> tuple[sqlite3.Connection, TextIndex]:
        if self._db is None or self._index is None:
            raise RuntimeError("store is not open")
        return self._db, self._index

    async def put(self, namespace: str, pattern: memory_pb2.Pattern, replace: bool) -> PutOutcome:
        def work() -> PutOutcome:
            db, index = self._conn()
            digest = fingerprint(pattern)
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT fingerprint, body FROM patterns WHERE namespace = ? AND id = ?",
                    (namespace, pattern.id),
                ).fetchone()
                if row is not None and row[0] == digest:
                    db.execute("ROLLBACK")
                    return PutOutcome(memory_pb2.Pattern.FromString(row[1]), True, False)
                if row is not None and not replace:
                    raise PatternConflictError(pattern.id)
                stored = _stamped(namespace, pattern)
                db.execute(
                    "INSERT OR REPLACE INTO patterns VALUES (?, ?, ?, ?, ?)",
                    (
                        namespace,
                        pattern.id,
                        digest,
                        stored.SerializeToString(),
                        stored.create_time.ToMicroseconds(),
                    ),
                )
                index.upsert(namespace, pattern.id, searchable_text(stored))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return PutOutcome(stored, False, row is not None)

        return await self._run(work)

    async def get(self, namespace: str, pattern_id: str) -> memory_pb2.Pattern | None:
        def work() -> memory_pb2.Pattern | None:
            db, _ = self._conn()
            row = db.execute(
                "SELECT body FROM patterns WHERE namespace = ? AND id = ?", (namespace, pattern_id)
            ).fetchone()
            return None if row is None else memory_pb2.Pattern.FromString(row[0])

        return await self._run(work)

    async def delete(self, namespace: str, pattern_id: str) -> bool:
        def work() -> bool:
            db, index = self._conn()
            db.execute("BEGIN IMMEDIATE")
            cursor = db.execute(
                "DELETE FROM patterns WHERE namespace = ? AND id = ?", (namespace, pattern_id)
            )
            index.remove(namespace, pattern_id)
            db.execute("COMMIT")
            return cursor.rowcount > 0

        return await self._run(work)

    async def search(
        self, namespace: str, terms: list[Term], limit: int
    ) -> list[tuple[memory_pb2.Pattern, float]]:
        def work() -> list[tuple[memory_pb2.Pattern, float]]:
            db, index = self._conn()
            found = []
            for doc_id, score in index.search(namespace, terms, limit):
                row = db.execute(
                    "SELECT body FROM patterns WHERE namespace = ? AND id = ?", (namespace, doc_id)
                ).fetchone()
                if row is not None:
                    found.append((memory_pb2.Pattern.FromString(row[0]), score))
            return found

        return await self._run(work)

    async def ping(self) -> bool:
        def work() -> bool:
            db, _ = self._conn()
            # Taking the write lock proves the file is there and writable.
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("ROLLBACK")
            except sqlite3.Error:
                return False
            return True

        return await self._run(work)

    async def close(self) -> None:
        def work() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(work)
        self._thread.shutdown(wait=True)


def _stamped(namespace: str, pattern: memory_pb2.Pattern) -> memory_pb2.Pattern:
    """The pattern as stored: namespace, store time, and a default create time."""
    stored = memory_pb2.Pattern()
    stored.CopyFrom(pattern)
    stored.namespace = namespace
    now_us = time.time_ns() // 1000
    stored.store_time.FromMicroseconds(now_us)
    if not stored.HasField("create_time"):
        stored.create_time.FromMicroseconds(now_us)
    return stored
