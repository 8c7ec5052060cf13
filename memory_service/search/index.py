"""The search index: patterns, their typed records and full text, in SQLite.

One class serves every place that searches: the embedded store keeps it in
its durable database file; a Redis-backed replica keeps one as a local cache
of Redis; the executor's fallback keeps one over its run files. So a query
and a filter mean the same wherever they are answered.

Tables: `docs` holds one row per (namespace, pattern id): the pattern, its
fingerprint, its typed record as JSON (for filters) and its creation time;
`doc_facts` its list and map values, indexed for filters. Ranked retrieval
runs in the text engine (text_engine.py): tantivy indexes in RAM, derived
from these tables and re-synced from them before each read, so SQLite stays
the store of record. Files written before it held two FTS5 tables; they are
dropped at open (their pages zeroed under PRAGMA secure_delete).

Retention: `docs.expire_us` is when a pattern expires (0: never). Every read
leaves out expired documents until `purge` deletes them. So that reads pay
nothing while nothing has expired, the index keeps, per namespace, a lower
bound of the earliest expiry and adds the clause only once it has passed.

The statements it runs besides the schema are in index_sql.py; a search's
read is in text_search.py; typo correction keeps its vocabulary in fuzzy.py,
query understanding its words in query_words.py.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from attune.memory.v1 import memory_pb2
from memory_service.search import index_sql
from memory_service.search.documents import searchable_text
from memory_service.search.filter import Node
from memory_service.search.fuzzy import FuzzyVocabulary
from memory_service.search.query import Occur, Term
from memory_service.search.query_words import QueryWordCounts
from memory_service.search.record_refresh import refresh_records
from memory_service.search.schema import pattern_record, record_json
from memory_service.search.sql_filter import record_facts, register_functions
from memory_service.search.text_engine import TextEngine
from memory_service.search.text_filter import marks_json
from memory_service.search.text_search import View
from memory_service.search.text_search import search as text_search

SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    rowid INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    body BLOB NOT NULL,
    record TEXT NOT NULL,
    create_time_us INTEGER NOT NULL,
    vector BLOB,
    template_id TEXT NOT NULL,
    success INTEGER NOT NULL,
    total_cost_usd REAL NOT NULL,
    total_duration_seconds REAL NOT NULL,
    agent_count INTEGER NOT NULL,
    type TEXT NOT NULL,
    classification TEXT NOT NULL,
    runner TEXT NOT NULL,
    run_id TEXT NOT NULL,
    pinned INTEGER NOT NULL,
    expire_us INTEGER NOT NULL DEFAULT 0,
    marks TEXT,
    UNIQUE (namespace, doc_id)
);
CREATE INDEX IF NOT EXISTS docs_by_time ON docs (namespace, create_time_us DESC, doc_id);
CREATE INDEX IF NOT EXISTS docs_by_expiry ON docs (namespace, expire_us) WHERE expire_us > 0;
CREATE TABLE IF NOT EXISTS doc_facts (
    rowid INTEGER NOT NULL,
    path TEXT NOT NULL,
    t TEXT NOT NULL,
    v
);
CREATE INDEX IF NOT EXISTS doc_facts_by_value ON doc_facts (path, v, rowid);
CREATE INDEX IF NOT EXISTS doc_facts_by_doc ON doc_facts (rowid);
"""
# The full-text tables of files written before the text engine: nothing
# reads or writes them any more.
LEGACY_TEXT_TABLES = ("pattern_text", "pattern_words")

log = logging.getLogger("attune.search.index")


class UnreadablePatternError(Exception):
    """A stored pattern whose bytes do not parse (damaged at rest): reads of
    it fail alone, lists and searches leave it out."""


def decode_pattern(body: bytes, namespace: str, doc_id: object = "") -> memory_pb2.Pattern | None:
    """The stored pattern, or None (logged) when its bytes do not parse.

    Unknown fields are dropped: a version before requests were cleaned of
    them may have stored some, and nothing unchecked is ever served.
    """
    try:
        pattern = memory_pb2.Pattern.FromString(body)
        pattern.DiscardUnknownFields()
        return pattern
    except DecodeError:
        log.warning(
            "stored pattern unreadable; left out",
            extra={"namespace": namespace, "pattern_id": str(doc_id), "bytes": len(body)},
        )
        return None


def wall_clock_us() -> int:
    """Now, in microseconds since the epoch: the default clock of expiry."""
    return time.time_ns() // 1000


def expire_us(pattern: memory_pb2.Pattern) -> int:
    """When the pattern expires, in microseconds; 0 when it never does.

    An expiry at or before the epoch still expires (1), rather than
    reading as "never".
    """
    if not pattern.HasField("expire_time"):
        return 0
    return max(1, pattern.expire_time.ToMicroseconds())


def is_expired(expire: int, now_us: int) -> bool:
    """Whether a document with this expire_us has expired at now_us."""
    return 0 < expire <= now_us


@dataclass(frozen=True)
class Recency:
    """Recency decay: a score halves every half_life_seconds of age."""

    half_life_seconds: float
    now_us: int = field(default_factory=lambda: time.time_ns() // 1000)


@dataclass(frozen=True)
class ReadQuery:
    """One ranked read: what every store and index layer passes down as is.

    Who reads (the viewer) is not part of it: the layers that enforce
    visibility take the viewer beside the query.
    """

    namespace: str
    terms: list[Term]
    condition: Node | None
    limit: int
    offset: int = 0
    recency: Recency | None = None
    explain: bool = False
    # How many of the SHOULD terms a document must contain (MUST terms are
    # always required, MUST_NOT ones always excluded).
    min_should_match: int = 1


def every_should(terms: list[Term]) -> int:
    """The min_should_match that requires every SHOULD term: what a search
    meant before terms could rank without all matching."""
    return sum(term.occur is Occur.SHOULD for term in terms)


@dataclass(frozen=True)
class PageQuery:
    """One ordered read of patterns passing a filter (a list, not a search)."""

    namespace: str
    condition: Node | None
    order_by: list[tuple[str, bool]]
    limit: int
    offset: int = 0


@dataclass(frozen=True)
class Hit:
    """One search result."""

    pattern: memory_pb2.Pattern
    score: float
    keyword_score: float
    recency_factor: float
    matched_terms: tuple[str, ...] = ()
    fuzzy_expansions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    """One group of a count."""

    key: str
    count: int
    success_count: int
    total_cost_usd: float


@dataclass(frozen=True)
class StoredDoc:
    """A stored pattern and the fingerprint of the write that made it."""

    pattern: memory_pb2.Pattern
    fingerprint: str


class SearchIndex:
    """Index operations on a connection the caller owns and serialises.

    `clock` tells expiry the time (microseconds since the epoch). `engine`
    is the text engine to rank in: indexes sharing one rank their
    documents of a base namespace together (a store's shared and SENSITIVE
    halves); by default the index has its own.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        clock: Callable[[], int] = wall_clock_us,
        engine: TextEngine | None = None,
    ) -> None:
        self._db = connection
        self._clock = clock
        register_functions(connection)
        index_sql.add_missing_columns(connection)
        connection.executescript(SCHEMA)
        refresh_records(connection, decode_pattern)  # Records made by an older pattern_record.
        _drop_legacy_text(connection)
        self._engine = engine or TextEngine()
        self._source = self._engine.attach(connection, decode_pattern)
        self._fuzzy = FuzzyVocabulary(connection, decode_pattern)
        self._query_words = QueryWordCounts(connection, decode_pattern)
        # Per namespace, at most the earliest expire_us of its documents (None:
        # none expires). Writes only lower it; it is recomputed outside
        # transactions, so a rollback never leaves it too high.
        self._earliest: dict[str, int | None] = {}

    # --- writes ------------------------------------------------------------------

    def put(self, namespace: str, pattern: memory_pb2.Pattern, fingerprint: str) -> None:
        """Indexes a pattern, replacing any earlier version under its id."""
        self.delete(namespace, pattern.id)
        text = searchable_text(pattern)
        record = pattern_record(pattern)
        scalars = [
            int(record[name]) if isinstance(record[name], bool) else record[name]
            for name in index_sql.SCALARS
        ]
        expires = expire_us(pattern)
        facts = record_facts(record)
        cursor = self._db.execute(
            "INSERT INTO docs (namespace, doc_id, fingerprint, body, record, create_time_us, "
            f"expire_us, marks, {', '.join(index_sql.SCALARS)}) "
            f"VALUES ({', '.join('?' * (8 + len(index_sql.SCALARS)))})",
            (
                namespace,
                pattern.id,
                fingerprint,
                pattern.SerializeToString(),
                record_json(record),
                pattern.create_time.ToMicroseconds(),
                expires,
                marks_json(facts),
                *scalars,
            ),
        )
        if expires and namespace in self._earliest:
            known = self._earliest[namespace]
            self._earliest[namespace] = expires if known is None else min(known, expires)
        self._db.executemany(
            "INSERT INTO doc_facts (rowid, path, t, v) VALUES (?, ?, ?, ?)",
            [(cursor.lastrowid, *fact) for fact in facts],
        )
        if pattern.embedding:
            self._db.execute(
                "UPDATE docs SET vector = ? WHERE rowid = ?", (pattern.embedding, cursor.lastrowid)
            )
        self._engine.touch(self._source, namespace, pattern.id)
        self._fuzzy.add(namespace, text)
        self._query_words.count(namespace, pattern, 1)

    def delete(self, namespace: str, pattern_id: str) -> bool:
        """Removes a pattern and its text; False if it was not there.

        An expired pattern is still there until deleted or purged. Its words
        leave the fuzzy vocabulary and the query words too, so neither a
        correction nor query understanding reacts to a word only a deleted
        (or reclassified) pattern had.
        """
        row = self._db.execute(
            "SELECT rowid, body FROM docs WHERE namespace = ? AND doc_id = ?",
            (namespace, pattern_id),
        ).fetchone()
        if row is None:
            return False
        rowid, body = row
        for table in ("docs", "doc_facts"):
            self._db.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
        self._engine.touch(self._source, namespace, pattern_id)
        removed = decode_pattern(body, namespace, pattern_id)
        if removed is None:
            # Its words are unknown: both word lists are rebuilt when next needed.
            self._fuzzy.forget(namespace)
            self._query_words.forget(namespace)
            return True
        self._query_words.count(namespace, removed, -1)
        self._fuzzy.remove(namespace, removed)
        return True

    def expired(self, now_us: int) -> list[tuple[str, str]]:
        """(namespace, id) of every document expired at now_us, not yet purged."""
        return [(namespace, doc_id) for namespace, doc_id, _ in self.expired_classified(now_us)]

    def expired_classified(self, now_us: int) -> list[tuple[str, str, str]]:
        """(namespace, id, classification) of every document expired at now_us."""
        return [
            (str(namespace), str(doc_id), str(classification))
            for namespace, doc_id, classification in self._db.execute(
                "SELECT namespace, doc_id, classification FROM docs "
                "WHERE expire_us > 0 AND expire_us <= ? ORDER BY namespace, doc_id",
                (now_us,),
            )
        ]

    def purge(self, now_us: int) -> int:
        """Deletes every document expired at now_us, with its text and facts."""
        gone = self.expired(now_us)
        for namespace, doc_id in gone:
            self.delete(namespace, doc_id)
        for namespace in {namespace for namespace, _ in gone}:
            # Query words are rebuilt without the purged documents when next asked.
            self._earliest.pop(namespace, None)
            self._query_words.forget(namespace)
        return len(gone)

    def drop_namespace(self, namespace: str) -> int:
        """Deletes every document of a namespace; how many there were."""
        ids = [
            str(doc_id)
            for (doc_id,) in self._db.execute(
                "SELECT doc_id FROM docs WHERE namespace = ?", (namespace,)
            )
        ]
        for doc_id in ids:
            self.delete(namespace, doc_id)
        self.forget(namespace)
        return len(ids)

    def forget(self, namespace: str) -> None:
        """Drops what is cached in memory of a namespace (vocabularies, expiry
        bound); it is read again from the tables when next needed."""
        self._fuzzy.forget(namespace)
        self._query_words.forget(namespace)
        self._earliest.pop(namespace, None)

    def stored_body(self, namespace: str, pattern_id: str) -> bytes | None:
        """The stored bytes of a document, expired or not: for a caller that
        mirrors another store and skips what has not changed."""
        row = self._db.execute(
            "SELECT body FROM docs WHERE namespace = ? AND doc_id = ?", (namespace, pattern_id)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def warm(self, namespace: str) -> None:
        """Builds the namespace's text index now rather than at its first search."""
        self._engine.warm(namespace)

    # --- reads -------------------------------------------------------------------

    def _live(self, namespace: str) -> tuple[str, list[object]]:
        """The clause (and its parameter) that leaves out expired documents;
        ("", []) while nothing in the namespace has expired."""
        now = self._clock()
        earliest = self._earliest_expiry(namespace)
        if earliest is not None and earliest <= now and not self._db.in_transaction:
            # The bound has passed: see whether something expired is still there.
            self._earliest.pop(namespace, None)
            earliest = self._earliest_expiry(namespace)
        if earliest is None or earliest > now:
            return "", []
        return index_sql.LIVE, [now]

    def _earliest_expiry(self, namespace: str) -> int | None:
        if namespace in self._earliest:
            return self._earliest[namespace]
        row = self._db.execute(
            "SELECT min(expire_us) FROM docs WHERE namespace = ? AND expire_us > 0", (namespace,)
        ).fetchone()
        earliest = None if row[0] is None else int(row[0])
        if not self._db.in_transaction:  # A rollback could bring back an earlier one.
            self._earliest[namespace] = earliest
        return earliest

    def _filter(self, namespace: str, condition: Node | None) -> tuple[str, list[object]]:
        """The compiled filter, and the expiry clause when one is needed."""
        where = index_sql.COMPILER.compile(condition)
        live, now = self._live(namespace)
        return where.sql + live, [*where.params, *now]

    def get(self, namespace: str, pattern_id: str) -> StoredDoc | None:
        """The stored pattern with its fingerprint, or None (also when expired)."""
        row = self._db.execute(
            "SELECT body, fingerprint, expire_us FROM docs WHERE namespace = ? AND doc_id = ?",
            (namespace, pattern_id),
        ).fetchone()
        if row is None or is_expired(int(row[2]), self._clock()):
            return None
        pattern = decode_pattern(row[0], namespace, pattern_id)
        if pattern is None:
            raise UnreadablePatternError(f"pattern {pattern_id!r} is stored unreadable")
        return StoredDoc(pattern, row[1])

    def vectors(self, namespace: str, condition: Node | None) -> list[tuple[str, bytes]]:
        """(id, vector) of every pattern with an embedding that passes the filter."""
        sql, params = self._filter(namespace, condition)
        return [
            (str(doc_id), bytes(vector))
            for doc_id, vector in self._db.execute(
                f"SELECT d.doc_id, d.vector FROM docs d WHERE d.namespace = ? "
                f"AND d.vector IS NOT NULL AND {sql}",
                [namespace, *params],
            )
        ]

    def get_many(self, namespace: str, pattern_ids: list[str]) -> dict[str, memory_pb2.Pattern]:
        """Patterns by id; missing (and expired) ids are left out."""
        found: dict[str, memory_pb2.Pattern] = {}
        now = self._clock()
        for start in range(0, len(pattern_ids), 500):
            chunk = pattern_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for doc_id, body, expires in self._db.execute(
                f"SELECT doc_id, body, expire_us FROM docs "
                f"WHERE namespace = ? AND doc_id IN ({marks})",
                [namespace, *chunk],
            ):
                pattern = (
                    None
                    if is_expired(int(expires), now)
                    else decode_pattern(body, namespace, doc_id)
                )
                if pattern is not None:
                    found[str(doc_id)] = pattern
        return found

    def page(self, query: PageQuery) -> tuple[list[memory_pb2.Pattern], int]:
        """A page of patterns passing the filter, in the given order, and the total."""
        namespace, condition, order_by = query.namespace, query.condition, query.order_by
        limit, offset = query.limit, query.offset
        sql, params = self._filter(namespace, condition)
        keys = [
            f"{index_sql.ORDERABLE[name]} {'DESC' if desc else 'ASC'}" for name, desc in order_by
        ]
        if not any(key.startswith("d.doc_id") for key in keys):
            keys.append("d.doc_id ASC")  # A total order, so pages never overlap.
        rows = self._db.execute(
            f"SELECT d.body, d.doc_id FROM docs d WHERE d.namespace = ? AND {sql} "
            f"ORDER BY {', '.join(keys)} LIMIT ? OFFSET ?",
            [namespace, *params, limit, offset],
        ).fetchall()
        total = self._count(namespace, sql, params)
        decoded = (decode_pattern(body, namespace, doc_id) for body, doc_id in rows)
        return [pattern for pattern in decoded if pattern is not None], total

    def _count(self, namespace: str, sql: str, params: list[object]) -> int:
        row = self._db.execute(
            f"SELECT count(*) FROM docs d WHERE d.namespace = ? AND {sql}",
            [namespace, *params],
        ).fetchone()
        return int(row[0])

    def count(
        self, namespace: str, condition: Node | None, group_by: str
    ) -> tuple[int, list[Group]]:
        """How many patterns pass the filter, grouped by a field's values.

        A list field (agents.tier) groups a pattern under each of its values.
        """
        sql, params = self._filter(namespace, condition)
        total = self._count(namespace, sql, params)
        if not group_by:
            row = self._db.execute(index_sql.totals_sql(sql), [namespace, *params]).fetchone()
            return total, [Group("", int(row[0]), int(row[1]), float(row[2]))] if row[0] else []
        rows = self._db.execute(
            index_sql.grouped_sql(group_by, sql), [namespace, *params]
        ).fetchall()
        return total, [
            Group(index_sql.group_key(k), int(n), int(s), float(c)) for k, n, s, c in rows
        ]

    def query_vocabulary(self, namespace: str) -> tuple[list[str], list[str]]:
        """(template ids, numeric form question ids) of the namespace's live documents.

        Query understanding reads these from the data itself, so the memory
        service and the executor's fallback, holding the same runs,
        understand a query the same way. Counted once per namespace, then
        kept up to date by put() and delete(); while expired documents
        await their purge, their words are taken off (see query_words.py).
        """
        _, now = self._live(namespace)
        return self._query_words.vocabulary(namespace, now)

    # --- search ------------------------------------------------------------------

    def expand(self, namespace: str, terms: list[Term]) -> tuple[list[list[Term]], list[str]]:
        """Each term with its fuzzy alternatives, and "typed->matched" notes (see fuzzy.py)."""
        return self._fuzzy.expand(namespace, terms)

    def view(self, namespace: str) -> View:
        """This index's namespace as a ranked read sees it (see text_search.py)."""
        return View(
            self._source, namespace, self._db, self._fuzzy, decode_pattern, self._live(namespace)
        )

    def top(self, query: ReadQuery) -> list[Hit]:
        """The best matches, without counting every match."""
        hits, _ = search_views(self._engine, [self.view(query.namespace)], query, count=False)
        return hits

    def search(self, query: ReadQuery) -> tuple[list[Hit], int]:
        """Ranked patterns matching the terms and the filter, and their total."""
        hits, total = search_views(self._engine, [self.view(query.namespace)], query, count=True)
        assert total is not None  # Counted when asked to.
        return hits, total


def search_views(
    engine: TextEngine, views: list[View], query: ReadQuery, *, count: bool
) -> tuple[list[Hit], int | None]:
    """Ranked patterns of several views of one base namespace (indexes
    sharing `engine`), ranked together, and their total if `count`.

    Terms rank by BM25 (SHOULD ones: a document needs min_should_match of
    them; MUST ones are required, MUST_NOT ones excluded); equal scores go
    newest first, then by id. Without ranking terms the filter alone
    selects, newest first.
    """
    found, total, notes = text_search(engine, views, query, count=count)
    hits = [
        Hit(
            result.pattern,
            score=result.score,
            keyword_score=result.keyword_score,
            recency_factor=result.recency_factor,
            matched_terms=result.matched_terms,
            fuzzy_expansions=tuple(notes),
        )
        for result in found
    ]
    return hits, total


def _drop_legacy_text(connection: sqlite3.Connection) -> None:
    """Drops the FTS5 tables of a file written before the text engine."""
    present = {
        str(name)
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
            LEGACY_TEXT_TABLES,
        )
    }
    if not present:
        return
    started = time.perf_counter()
    for table in sorted(present):
        connection.execute(f"DROP TABLE {table}")  # A constant name: see LEGACY_TEXT_TABLES.
    log.info(
        "legacy full-text tables dropped",
        extra={"duration_ms": round((time.perf_counter() - started) * 1000, 1)},
    )
