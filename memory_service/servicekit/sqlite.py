"""SQLite plumbing every store and index shares: transactions and cache files.

The connections here run in autocommit mode (`isolation_level=None`), so a
transaction is explicit: `transaction` opens one, commits it when the block
ends and rolls it back when the block raises.

A cache file (the Redis replica's search cache, the executor's local index)
is rebuilt rather than trusted when it is unreadable or stamped by another
version: `open_cache_file` opens and checks it, `read_stamp`/`write_stamp`
keep what it is, `remove_cache_file` clears it for the rebuild.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from memory_service.servicekit.private_files import private_file


@contextlib.contextmanager
def transaction(db: sqlite3.Connection, *, immediate: bool = False) -> Iterator[None]:
    """One transaction on an autocommit connection: committed, or rolled back on any error.

    `immediate` takes the write lock at once (BEGIN IMMEDIATE), so a writer
    waits for another connection's writer here instead of failing later.
    """
    db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # A failed COMMIT may have ended it already.
            db.execute("ROLLBACK")
        raise


# How an existing cache file is checked on open: not at all (a new file), that
# it is a database at all (fast), or also its pages (PRAGMA quick_check).
Check = Literal["none", "readable", "quick_check"]


def open_cache_file(path: Path, *, synchronous: str, check: Check) -> sqlite3.Connection:
    """An owner-only SQLite cache file in WAL mode, autocommit; raises
    sqlite3.DatabaseError when `check` finds it unusable (the caller
    rebuilds: `remove_cache_file`, then opens it again)."""
    # Owner-only before SQLite opens it: its -wal and -shm take its mode.
    db = sqlite3.connect(private_file(path), isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        if check == "readable":
            # Reading fails fast on a file that is not a database.
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        elif check == "quick_check" and db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("quick_check failed")
    except BaseException:
        db.close()
        raise
    return db


def remove_cache_file(path: Path) -> None:
    """Deletes the file and its WAL whole (rather than dropping tables), so
    nothing of an older cache's plaintext stays in their pages."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def read_stamp(db: sqlite3.Connection, table: str) -> dict[str, str]:
    """What the cache file says it is (its version, and what it was built for).

    Empty for a new file, or one whose build never finished if the stamp is
    written last. `table` is a constant of the caller's.
    """
    db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    rows = db.execute(f"SELECT key, value FROM {table}").fetchall()  # noqa: S608
    return {str(key): str(value) for key, value in rows}


def write_stamp(db: sqlite3.Connection, table: str, stamp: dict[str, str]) -> None:
    """Records what the cache file is (see read_stamp)."""
    with transaction(db):
        db.executemany(
            f"INSERT OR REPLACE INTO {table} (key, value) VALUES (?, ?)",  # noqa: S608
            list(stamp.items()),
        )
