"""Bringing stored filter records up to date when what a record holds changes.

The search index keeps each pattern's typed record (docs.record) and its list
and map values (doc_facts), made by schema.pattern_record when the pattern
was written. A durable index (the embedded store's file) outlives a change
of pattern_record, so records written before it lack the new fields and a
filter on them would miss those patterns. At open, an index stamped with
another RECORD_VERSION has every record made again from the stored pattern
(in one transaction; about the cost of re-reading every pattern once), then
is stamped. A new or empty index is only stamped.
"""

from __future__ import annotations

import logging
import sqlite3
import time

from memory_service.search.documents import Decode
from memory_service.search.schema import pattern_record, record_json
from memory_service.search.sql_filter import record_facts
from memory_service.servicekit.sqlite import read_stamp, transaction, write_stamp

log = logging.getLogger("attune.search.records")

# Bump whenever pattern_record changes what it holds. 2: agents carry
# tier_strategy, first_tier and their escalation.
RECORD_VERSION = "2"
_STAMP = "record_meta"
_BATCH = 500  # Rows read per round, so a refresh never holds every pattern at once.


def refresh_records(db: sqlite3.Connection, decode: Decode) -> int:
    """Remakes every record when the index was stamped by another version;
    returns how many were remade. `db` holds the index's docs and doc_facts."""
    if read_stamp(db, _STAMP).get("version") == RECORD_VERSION:
        return 0
    started = time.monotonic()
    remade, last = 0, 0
    with transaction(db):
        while rows := db.execute(
            "SELECT rowid, namespace, doc_id, body FROM docs "
            "WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (last, _BATCH),
        ).fetchall():
            for rowid, namespace, doc_id, body in rows:
                pattern = decode(body, namespace, doc_id)
                if pattern is None:
                    continue  # Unreadable: left out of every read anyway.
                record = pattern_record(pattern)
                db.execute(
                    "UPDATE docs SET record = ? WHERE rowid = ?", (record_json(record), rowid)
                )
                db.execute("DELETE FROM doc_facts WHERE rowid = ?", (rowid,))
                db.executemany(
                    "INSERT INTO doc_facts (rowid, path, t, v) VALUES (?, ?, ?, ?)",
                    [(rowid, *fact) for fact in record_facts(record)],
                )
                remade += 1
            last = rows[-1][0]
    write_stamp(db, _STAMP, {"version": RECORD_VERSION})
    if remade:
        log.info(
            "filter records remade for a newer record version",
            extra={"patterns": remade, "seconds": round(time.monotonic() - started, 3)},
        )
    return remade
