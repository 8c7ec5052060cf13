"""A store file of a million patterns, written faster than SearchIndex.put can.

Through SearchIndex.put a million patterns take about 20 minutes here and
slow down as the B-trees outgrow the cache. The bulk loader writes the same
rows faster, relying on what `variants` varies: the n-th pattern differs
from its seed (n modulo len(BASE)) only in id, run id, create time and cost.
So the seeds go through SearchIndex.put; every other pattern's docs row is
made in Python from the pattern, as put makes it, while its facts (lists and
maps only: the same as its seed's) are copied from its seed's rows inside
SQLite. (The text index is tantivy's, built from the docs by the replica.)
Journal off while loading, WAL as usual afterwards; the facts' value index
is made once at the end instead of row by row.

`check_bulk_matches_put` holds the loader to put: the same tables, row for
row in every table (apart from the store time each write stamps), on a
small corpus.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from attune.memory.v1 import memory_pb2
from memory_service.patterns import fingerprint
from memory_service.search import index_sql
from memory_service.search.index import SCHEMA, SearchIndex, expire_us
from memory_service.search.schema import pattern_record, record_json
from memory_service.search.sql_filter import record_facts
from memory_service.search.text_filter import marks_json
from memory_service.store.embedded import stamped
from tests.bench.search_corpus import (
    BASE,
    NAMESPACE,
    STORE_FILE,
    SearchStore,
    build_index,
    variant,
    variants,
)

CHUNK = 20_000
# Facts are indexed by value: random inserts into a B-tree far larger than
# any cache. Dropped while loading and made again (one sort) at the end.
VALUE_INDEX = next(
    (statement.strip() for statement in SCHEMA.split(";") if "doc_facts_by_value" in statement),
    None,
)
_COLUMNS = (
    "namespace",
    "doc_id",
    "fingerprint",
    "body",
    "record",
    "create_time_us",
    "expire_us",
    "marks",
)


def _docs_row(rowid: int, pattern: memory_pb2.Pattern) -> tuple[object, ...]:
    """The docs row SearchIndex.put writes for a pattern (see index.py)."""
    stored = stamped(NAMESPACE, pattern)
    record = pattern_record(stored)
    scalars = [
        int(record[name]) if isinstance(record[name], bool) else record[name]
        for name in index_sql.SCALARS
    ]
    return (
        rowid,
        NAMESPACE,
        stored.id,
        fingerprint(pattern),
        stored.SerializeToString(),
        record_json(record),
        stored.create_time.ToMicroseconds(),
        expire_us(stored),
        marks_json(record_facts(record)),
        *scalars,
    )


def bulk_build(data_dir: Path, count: int) -> float:
    """Writes `count` variants into data_dir's store file; returns seconds."""
    started = time.perf_counter()
    seeds = len(BASE)
    build_index(data_dir, variants(min(seeds, count)))
    db = sqlite3.connect(data_dir / "patterns.sqlite3", isolation_level=None)
    SearchIndex(db)  # Its functions and schema, as every connection has them.
    first = db.execute("SELECT min(rowid), max(rowid) FROM docs").fetchone()
    assert first == (1, min(seeds, count)), "seeds are rows 1..len(BASE)"
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")  # 1 GB: the B-trees stay in memory.
    if VALUE_INDEX:
        db.execute("DROP INDEX doc_facts_by_value")
    columns = ", ".join(("rowid", *_COLUMNS, *index_sql.SCALARS))
    marks = ", ".join("?" * (1 + len(_COLUMNS) + len(index_sql.SCALARS)))
    # The seed of row r is row ((r - 1) % seeds) + 1.
    seed = f"((d.rowid - 1) % {seeds}) + 1"
    for low in range(seeds, count, CHUNK):
        high = min(low + CHUNK, count)
        db.execute("BEGIN")
        db.executemany(
            f"INSERT INTO docs ({columns}) VALUES ({marks})",
            (_docs_row(n + 1, variant(n)) for n in range(low, high)),
        )
        span = (low + 1, high)
        db.execute(
            "INSERT INTO doc_facts (rowid, path, t, v) SELECT d.rowid, f.path, f.t, f.v "
            f"FROM docs d JOIN doc_facts f ON f.rowid = {seed} "
            "WHERE d.rowid BETWEEN ? AND ? ORDER BY d.rowid, f.path, f.v",
            span,
        )
        db.execute("COMMIT")
    if VALUE_INDEX:
        db.execute(VALUE_INDEX)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    return time.perf_counter() - started


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """A store file's schema and every row of its tables, store times cleared.

    Every table counts (one the index starts writing is compared too), but
    not a virtual table's own shadow tables (should one come back): their
    segments depend on how the rows were batched, not on what they hold.
    """
    db = sqlite3.connect(path)
    schema = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    virtual = {str(name) for kind, name, sql in schema if kind == "table" and "VIRTUAL" in str(sql)}
    found: dict[str, list[tuple[object, ...]]] = {"schema": schema}
    for kind, name, _ in schema:
        shadow = any(str(name).startswith(f"{table}_") for table in virtual)
        if kind != "table" or shadow or str(name).startswith("sqlite_"):
            continue
        columns = [str(row[1]) for row in db.execute(f"PRAGMA table_info({name})")]
        selected = ["rowid", *columns] if name in virtual else columns
        order = ", ".join(str(n) for n in range(1, len(selected) + 1))
        rows = db.execute(f"SELECT {', '.join(selected)} FROM {name} ORDER BY {order}").fetchall()
        if name == "docs":
            body = selected.index("body")
            rows = [(*row[:body], _without_store_time(row[body]), *row[body + 1 :]) for row in rows]
        found[str(name)] = rows
    db.close()
    return found


def _without_store_time(body: bytes) -> bytes:
    pattern = memory_pb2.Pattern.FromString(body)
    pattern.ClearField("store_time")
    return pattern.SerializeToString(deterministic=True)


def check_bulk_matches_put(tmp: Path, count: int = 2 * len(BASE) + 7) -> None:
    """The bulk loader writes what SearchIndex.put writes (see the module doc)."""
    build_index(tmp / "put", variants(count))
    bulk_build(tmp / "bulk", count)
    put = _tables(tmp / "put" / "patterns.sqlite3")
    bulk = _tables(tmp / "bulk" / "patterns.sqlite3")
    for table, rows in put.items():
        assert bulk[table] == rows, f"bulk loader's {table} differs from SearchIndex.put's"


def bulk_store(root: Path, count: int) -> SearchStore:
    """A memory process's root with `count` patterns, by the checked bulk loader."""
    check_bulk_matches_put(root / "check")
    seconds = bulk_build(root / STORE_FILE.parent, count)
    note = "bulk loader (seeds through SearchIndex.put, the rest copied in SQL; checked equal)"
    return SearchStore(root, count, seconds, note)
