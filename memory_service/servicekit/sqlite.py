"""SQLite plumbing every store and index shares: transactions and cache files.

The connections here run in autocommit mode (`isolation_level=None`), so a
transaction is explicit: `transaction` opens one, commits it when the block
ends and rolls it back when the block raises.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


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
