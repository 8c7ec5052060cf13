"""The search index: patterns, their typed records and full text, in SQLite.

One class serves every place that searches: the embedded store keeps it in
its durable database file; a Redis-backed replica keeps one as a local cache
of Redis; the executor's fallback keeps one over its run files. So a query
and a filter mean the same wherever they are answered.

Tables: `docs` holds one row per (namespace, pattern id): the pattern, its
fingerprint, its typed record as JSON (for filters) and its creation time.
Two FTS5 tables share the docs rowid: `pattern_text` is stemmed ("packages"
finds "package"); `pattern_words` keeps words as written, for prefix terms
and for the fuzzy vocabulary.

Retention: `docs.expire_us` is when a pattern expires (0: never). Every read
leaves out expired documents until `purge` deletes them. So that reads pay
nothing while nothing has expired, the index keeps, per namespace, a lower
bound of the earliest expiry and adds the clause only once it has passed.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from attune.memory.v1 import memory_pb2
from memory_service.search.documents import searchable_text
from memory_service.search.filter import Node
from memory_service.search.query import Term, to_fts_expression
from memory_service.search.schema import PATTERN_SCHEMA, pattern_record, record_json
from memory_service.search.sql_filter import FilterCompiler, record_facts, register_functions

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
CREATE VIRTUAL TABLE IF NOT EXISTS pattern_text USING fts5(
    ns, body, tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS pattern_words USING fts5(
    ns, body, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3 4'
);
"""

_SCALARS = (
    "template_id",
    "success",
    "total_cost_usd",
    "total_duration_seconds",
    "agent_count",
    "type",
    "classification",
    "runner",
    "run_id",
    "pinned",
)
COMPILER = FilterCompiler(
    PATTERN_SCHEMA,
    "d.record",
    {"create_time": "d.create_time_us"},
    {name: f"d.{name}" for name in (*_SCALARS, "id")} | {"id": "d.doc_id"},
    facts=("doc_facts", "d.rowid"),
)


def namespace_token(namespace: str) -> str:
    """The namespace as one full-text token, so the index itself scopes a
    match to a namespace (a tokenizer would split "team-a" into two words)."""
    return "n" + namespace.encode().hex()


_LN2 = 0.6931471805599453
# The ranking of a keyword hit: log(bm25 * 0.5^h), which never underflows, so
# very old patterns still rank by age instead of all tying at zero.
RANK_SQL = f"ln(max(k, 1e-12)) - h * {_LN2}"
# Words worth correcting: letters only, long enough that an edit is a typo.
_FUZZY_WORD = re.compile(r"[^\W\d_]{4,}")
# The corrector's work is bounded whatever the query and the vocabulary: at
# most this many terms of a query are corrected (the first ones), each
# against at most this many known words of a length it can be within reach of.
MAX_CORRECTED_TERMS = 8
MAX_FUZZY_CANDIDATES = 30_000
_ORDERABLE = {"create_time": "d.create_time_us", "id": "d.doc_id"}
# Rows a read leaves out once something in the namespace has expired.
_LIVE = " AND (d.expire_us = 0 OR d.expire_us > ?)"

log = logging.getLogger("attune.search.index")


# Query words (template ids, numeric question ids) of a namespace that query
# understanding considers: far more than any real catalog holds.
MAX_QUERY_WORDS = 10_000


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


def query_words(pattern: memory_pb2.Pattern) -> tuple[list[str], list[str]]:
    """The words query understanding learns from a pattern: its template id
    and the ids of its numeric form answers."""
    templates = [pattern.template_id] if pattern.template_id else []
    numeric = [
        key
        for key, value in pattern.form_responses.items()
        if value.WhichOneof("kind") == "number_value"
    ]
    return templates, numeric


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


def _most_common(words: Counter[str]) -> list[str]:
    """At most MAX_QUERY_WORDS of the words, the most used first kept, sorted."""
    if len(words) <= MAX_QUERY_WORDS:
        return sorted(words)
    return sorted(word for word, _ in words.most_common(MAX_QUERY_WORDS))


class SearchIndex:
    """Index operations on a connection the caller owns and serialises.

    `clock` tells expiry the time (microseconds since the epoch).
    """

    def __init__(
        self, connection: sqlite3.Connection, clock: Callable[[], int] = wall_clock_us
    ) -> None:
        self._db = connection
        self._clock = clock
        register_functions(connection)
        _add_expiry_column(connection)
        connection.executescript(SCHEMA)
        self._vocabulary: dict[str, Counter[str]] = {}
        # Per namespace, how many documents name each template id and numeric
        # question id: counted, so a word leaves with the last document naming it.
        self._query_words: dict[str, tuple[Counter[str], Counter[str]]] = {}
        # Per namespace, the vocabulary by word length: the words and their
        # ranks in it. Made when a correction needs it, dropped on change.
        self._by_length: dict[str, dict[int, tuple[list[str], list[int]]]] = {}
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
            for name in _SCALARS
        ]
        expires = expire_us(pattern)
        cursor = self._db.execute(
            "INSERT INTO docs (namespace, doc_id, fingerprint, body, record, create_time_us, "
            f"expire_us, {', '.join(_SCALARS)}) VALUES ({', '.join('?' * (7 + len(_SCALARS)))})",
            (
                namespace,
                pattern.id,
                fingerprint,
                pattern.SerializeToString(),
                record_json(record),
                pattern.create_time.ToMicroseconds(),
                expires,
                *scalars,
            ),
        )
        if expires and namespace in self._earliest:
            known = self._earliest[namespace]
            self._earliest[namespace] = expires if known is None else min(known, expires)
        self._db.executemany(
            "INSERT INTO doc_facts (rowid, path, t, v) VALUES (?, ?, ?, ?)",
            [(cursor.lastrowid, *fact) for fact in record_facts(record)],
        )
        if pattern.embedding:
            self._db.execute(
                "UPDATE docs SET vector = ? WHERE rowid = ?", (pattern.embedding, cursor.lastrowid)
            )
        token = namespace_token(namespace)
        for table in ("pattern_text", "pattern_words"):
            self._db.execute(
                f"INSERT INTO {table} (rowid, ns, body) VALUES (?, ?, ?)",
                (cursor.lastrowid, token, text),
            )
        if namespace in self._vocabulary:
            vocabulary = self._vocabulary[namespace]
            known = len(vocabulary)
            vocabulary.update(w.lower() for w in _FUZZY_WORD.findall(text))
            self._grow_by_length(namespace, vocabulary, known)
        self._count_query_words(namespace, pattern, 1)

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
        for table in ("docs", "pattern_text", "pattern_words", "doc_facts"):
            self._db.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
        removed = decode_pattern(body, namespace, pattern_id)
        if removed is None:
            # Its words are unknown: both word lists are rebuilt when next needed.
            self._vocabulary.pop(namespace, None)
            self._by_length.pop(namespace, None)
            self._query_words.pop(namespace, None)
            return True
        self._count_query_words(namespace, removed, -1)
        vocabulary = self._vocabulary.get(namespace)
        if vocabulary is None:
            return True
        gone = Counter(word.lower() for word in _FUZZY_WORD.findall(searchable_text(removed)))
        vocabulary.subtract(gone)
        for word in gone:
            if vocabulary[word] <= 0:
                del vocabulary[word]
                self._by_length.pop(namespace, None)  # Made again when next needed.
        return True

    def expired(self, now_us: int) -> list[tuple[str, str]]:
        """(namespace, id) of every document expired at now_us, not yet purged."""
        return [
            (str(namespace), str(doc_id))
            for namespace, doc_id in self._db.execute(
                "SELECT namespace, doc_id FROM docs WHERE expire_us > 0 AND expire_us <= ? "
                "ORDER BY namespace, doc_id",
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
            self._query_words.pop(namespace, None)
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
        self._vocabulary.pop(namespace, None)
        self._by_length.pop(namespace, None)
        self._query_words.pop(namespace, None)
        self._earliest.pop(namespace, None)

    def stored_body(self, namespace: str, pattern_id: str) -> bytes | None:
        """The stored bytes of a document, expired or not: for a caller that
        mirrors another store and skips what has not changed."""
        row = self._db.execute(
            "SELECT body FROM docs WHERE namespace = ? AND doc_id = ?", (namespace, pattern_id)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def optimize_text(self) -> None:
        """Merges each full-text table into one segment.

        FTS5 deletes by writing tombstones: a deleted document's terms stay
        in older segments until those merge. Merging everything rewrites the
        index without them (the freed pages are then zeroed under PRAGMA
        secure_delete). Costs time in proportion to the whole index.
        """
        for table in ("pattern_text", "pattern_words"):
            self._db.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")

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
        return _LIVE, [now]

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
        where = COMPILER.compile(condition)
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
        keys = [f"{_ORDERABLE[name]} {'DESC' if desc else 'ASC'}" for name, desc in order_by]
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
        success = "json_extract(d.record, '$.success')"
        cost = "json_extract(d.record, '$.total_cost_usd')"
        if not group_by:
            row = self._db.execute(
                f"SELECT count(*), coalesce(sum({success}), 0), coalesce(sum({cost}), 0) "
                f"FROM docs d WHERE d.namespace = ? AND {sql}",
                [namespace, *params],
            ).fetchone()
            return total, [Group("", int(row[0]), int(row[1]), float(row[2]))] if row[0] else []
        source, key = _group_source(group_by)
        # DISTINCT (key, pattern) first: a pattern with two premium agents
        # counts, succeeds and costs once in the premium group, not twice.
        rows = self._db.execute(
            "SELECT k, count(*) AS n, coalesce(sum(s), 0), coalesce(sum(c), 0) FROM ("
            f"SELECT DISTINCT {key} AS k, d.rowid, {success} AS s, {cost} AS c "
            f"FROM docs d {source} WHERE d.namespace = ? AND {sql}"
            ") GROUP BY k ORDER BY n DESC, k",
            [namespace, *params],
        ).fetchall()
        return total, [Group(_group_key(k), int(n), int(s), float(c)) for k, n, s, c in rows]

    def query_vocabulary(self, namespace: str) -> tuple[list[str], list[str]]:
        """(template ids, numeric form question ids) of the namespace's live documents.

        Query understanding reads these from the data itself, so the memory
        service and the executor's fallback, holding the same runs,
        understand a query the same way. Counted once per namespace, then
        kept up to date by put() and delete(); while expired documents
        await their purge, their words are taken off (a read of those
        documents only, through the expiry index).
        """
        if namespace not in self._query_words:
            self._query_words[namespace] = self._load_query_words(namespace)
        templates, numeric = self._query_words[namespace]
        live, params = self._live(namespace)
        if live:
            gone: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
            for body, doc_id in self._db.execute(
                "SELECT body, doc_id FROM docs "
                "WHERE namespace = ? AND expire_us > 0 AND expire_us <= ?",
                [namespace, *params],
            ):
                pattern = decode_pattern(body, namespace, doc_id)
                if pattern is None:  # Damaged: its words stay counted until it is purged.
                    continue
                for counter, words in zip(gone, query_words(pattern), strict=True):
                    counter.update(words)
            templates, numeric = templates - gone[0], numeric - gone[1]
        # The most common words only: what a search weighs stays bounded
        # however many distinct ids writers have sent.
        return _most_common(templates), _most_common(numeric)

    def _load_query_words(self, namespace: str) -> tuple[Counter[str], Counter[str]]:
        queries = (
            "SELECT template_id, count(*) FROM docs "
            "WHERE namespace = ? AND template_id <> '' GROUP BY template_id",
            "SELECT f.key, count(*) FROM docs d, json_each(d.record, '$.form_responses') f "
            "WHERE d.namespace = ? AND f.type IN ('integer', 'real') GROUP BY f.key",
        )
        templates, numeric = (
            Counter({str(word): int(n) for word, n in self._db.execute(sql, (namespace,))})
            for sql in queries
        )
        return templates, numeric

    def _count_query_words(self, namespace: str, pattern: memory_pb2.Pattern, step: int) -> None:
        """Adds (step 1) or removes (step -1) a document's query words, if loaded."""
        if namespace not in self._query_words:
            return
        for counter, words in zip(self._query_words[namespace], query_words(pattern), strict=True):
            for word in words:
                counter[word] += step
                if counter[word] <= 0:
                    del counter[word]

    # --- search ------------------------------------------------------------------

    def _vocabulary_words(self, namespace: str) -> Counter[str]:
        """The correctable words of one namespace: fuzzy matching never
        suggests, or reveals, a word of another namespace."""
        if namespace not in self._vocabulary:
            words: Counter[str] = Counter()
            for body, doc_id in self._db.execute(
                "SELECT body, doc_id FROM docs WHERE namespace = ?", (namespace,)
            ):
                pattern = decode_pattern(body, namespace, doc_id)
                if pattern is None:
                    continue
                text = searchable_text(pattern)
                words.update(word.lower() for word in _FUZZY_WORD.findall(text))
            self._vocabulary[namespace] = words
        return self._vocabulary[namespace]

    def _grow_by_length(self, namespace: str, vocabulary: Counter[str], known: int) -> None:
        """Adds the words `vocabulary` gained past its first `known` to the lengths."""
        by_length = self._by_length.get(namespace)
        if by_length is None:
            return
        added = len(vocabulary) - known
        # New words come last, in order; a rank need only follow that order.
        fresh = reversed(list(itertools.islice(reversed(vocabulary), added)))
        for rank, word in enumerate(fresh, start=_next_rank(by_length)):
            words, ranks = by_length.setdefault(len(word), ([], []))
            words.append(word)
            ranks.append(rank)

    def _words_by_length(self, namespace: str) -> dict[int, tuple[list[str], list[int]]]:
        """The namespace's vocabulary by word length: the words, and their ranks in it."""
        if namespace not in self._by_length:
            by_length: dict[int, tuple[list[str], list[int]]] = {}
            for rank, word in enumerate(self._vocabulary_words(namespace)):
                words, ranks = by_length.setdefault(len(word), ([], []))
                words.append(word)
                ranks.append(rank)
            self._by_length[namespace] = by_length
        return self._by_length[namespace]

    def _corrections(self, namespace: str, word: str) -> list[str]:
        """Up to three known words within reach of `word`, nearest first.

        Only words whose length is within the edit limit can be (an edit
        changes the length by one at most), and ties go to the word the
        vocabulary met first: the same answer as trying every known word.
        """
        limit = 2 if len(word) >= 7 else 1
        by_length = self._words_by_length(namespace)
        share = MAX_FUZZY_CANDIDATES // (2 * limit + 1)
        words: list[str] = []
        ranks: list[int] = []
        for length in range(len(word) - limit, len(word) + limit + 1):
            known, rank = by_length.get(length, ([], []))
            words += known[:share]
            ranks += rank[:share]
        found = process.extract(
            word, words, scorer=Levenshtein.distance, score_cutoff=limit, limit=None
        )
        found.sort(key=lambda hit: (hit[1], ranks[hit[2]]))
        return [known for known, _, _ in found[:3]]

    def expand(self, namespace: str, terms: list[Term]) -> tuple[list[list[Term]], list[str]]:
        """Each term with its fuzzy alternatives, and "typed->matched" notes.

        Only a single whole word that no document contains is corrected: up
        to three known words within one edit (two for words of 7+ letters).
        At most MAX_CORRECTED_TERMS terms are corrected, so a long query
        against a huge vocabulary costs no more than a short one.
        """
        vocabulary = self._vocabulary_words(namespace)
        expanded: list[list[Term]] = []
        notes: list[str] = []
        corrected = 0
        for term in terms:
            options = [term]
            word = term.words[0] if len(term.words) == 1 else ""
            if (
                corrected < MAX_CORRECTED_TERMS
                and not term.prefix
                and _FUZZY_WORD.fullmatch(word)
                and word not in vocabulary
            ):
                corrected += 1
                for candidate in self._corrections(namespace, word):
                    options.append(Term((candidate,)))
                    notes.append(f"{word}->{candidate}")
            expanded.append(options)
        return expanded, notes

    def top(self, query: ReadQuery) -> list[Hit]:
        """The best matches, without counting every match (about half a search's cost)."""
        hits, _ = self._search(query, count=False)
        return hits

    def search(self, query: ReadQuery) -> tuple[list[Hit], int]:
        """Ranked patterns matching every term and the filter, and their total."""
        hits, total = self._search(query, count=True)
        assert total is not None  # Counted when asked to.
        return hits, total

    def _search(
        self,
        query: ReadQuery,
        *,
        count: bool,
    ) -> tuple[list[Hit], int | None]:
        """Ranked patterns matching every term and the filter, and their total if `count`.

        Whole-word terms rank by BM25 in the stemmed table; prefix terms
        filter through the unstemmed one (ranking there when alone); equal
        ranks go newest first, then by id. Without terms, the filter alone
        selects, newest first.
        """
        namespace, terms, condition = query.namespace, query.terms, query.condition
        limit, offset, recency, explain = query.limit, query.offset, query.recency, query.explain
        where = COMPILER.compile(condition)
        live, live_params = self._live(namespace)
        filter_sql, filter_params = where.sql + live, [*where.params, *live_params]
        # h: the age in half-lives; the recency factor is 0.5^h. Ranking uses
        # log(score) - h*ln2, the log of score*0.5^h, which never underflows:
        # very old patterns still rank by age instead of all tying at zero.
        if recency is not None:
            halves = "(max(0, ? - d.create_time_us) / ?)"
            decay_params: list[object] = [recency.now_us, recency.half_life_seconds * 1e6]
        else:
            halves, decay_params = "0.0", []
        decay = f"pow(0.5, {halves}) AS r, {halves} AS h"
        decay_params = decay_params * 2
        notes: list[str] = []
        total: int | None = None
        if not terms:
            sql = (
                f"SELECT d.body, 0.0, {decay}, d.rowid FROM docs d "
                f"WHERE d.namespace = ? AND {filter_sql} "
                "ORDER BY h, d.create_time_us DESC, d.doc_id LIMIT ? OFFSET ?"
            )
            params: list[object] = [*decay_params, namespace, *filter_params, limit, offset]
            count_sql, count_params = filter_sql, filter_params
        else:
            expanded, notes = self.expand(namespace, terms)
            words = [group for group in expanded if not group[0].prefix]
            prefixes = [group for group in expanded if group[0].prefix]
            ranked = "pattern_text" if words else "pattern_words"
            token = namespace_token(namespace)
            # The namespace is part of the match itself: the index scopes it.
            match = f'ns : "{token}" AND body : ({_expression(words or prefixes)})'
            prefix_sql = ""
            prefix_params: list[object] = []
            if words and prefixes:
                prefix_sql = (
                    "AND d.rowid IN (SELECT rowid FROM pattern_words WHERE pattern_words MATCH ?) "
                )
                prefix_params = [f'ns : "{token}" AND body : ({_expression(prefixes)})']
            sql = (
                f"SELECT d.body, -bm25({ranked}, 0.0, 1.0) AS k, {decay}, d.rowid "
                f"FROM {ranked} JOIN docs d ON d.rowid = {ranked}.rowid "
                f"WHERE {ranked} MATCH ? AND {filter_sql} {prefix_sql}"
                f"ORDER BY {RANK_SQL} DESC, d.create_time_us DESC, d.doc_id "
                "LIMIT ? OFFSET ?"
            )
            params = [*decay_params, match, *filter_params, *prefix_params, limit, offset]
            if count and where.sql == "1" and not prefix_sql:
                # No filter: the full-text index counts on its own, without a
                # join, less the expired documents it matches.
                total = int(
                    self._db.execute(
                        f"SELECT count(*) FROM {ranked} WHERE {ranked} MATCH ?", (match,)
                    ).fetchone()[0]
                )
                if live:
                    total -= self._expired_matches(namespace, ranked, match, live_params)
            count_sql = (
                f"d.rowid IN (SELECT rowid FROM {ranked} WHERE {ranked} MATCH ?) "
                f"AND {filter_sql} {prefix_sql}"
            )
            count_params = [match, *filter_params, *prefix_params]
        rows = self._db.execute(sql, params).fetchall()
        if count and total is None:
            total = self._count(namespace, count_sql, count_params)
        hits = []
        for body, keyword, factor, _, rowid in rows:
            pattern = decode_pattern(body, namespace, f"rowid {rowid}")
            if pattern is None:
                continue
            matched = self._matched(int(rowid), terms, notes) if explain and terms else ()
            hits.append(
                Hit(
                    pattern,
                    score=float(keyword) * float(factor) if terms else float(factor),
                    keyword_score=float(keyword),
                    recency_factor=float(factor),
                    matched_terms=matched,
                    fuzzy_expansions=tuple(notes),
                )
            )
        return hits, total

    def _expired_matches(self, namespace: str, table: str, match: str, now: list[object]) -> int:
        """How many expired, unpurged documents of the namespace the match finds.

        Few between purges, and the oldest, so mostly a narrow rowid range:
        the full-text index reads only the matches in that range.
        """
        expired = {
            int(rowid)
            for (rowid,) in self._db.execute(
                "SELECT rowid FROM docs WHERE namespace = ? AND expire_us > 0 AND expire_us <= ?",
                [namespace, *now],
            )
        }
        if not expired:
            return 0
        found = self._db.execute(
            f"SELECT rowid FROM {table} WHERE {table} MATCH ? AND rowid BETWEEN ? AND ?",
            (match, min(expired), max(expired)),
        )
        return sum(1 for (rowid,) in found if int(rowid) in expired)

    def _matched(self, rowid: int, terms: list[Term], notes: list[str]) -> tuple[str, ...]:
        """Which terms (or their corrections) this document contains."""
        candidates = [" ".join(term.words) + ("*" if term.prefix else "") for term in terms]
        candidates += [note.split("->", 1)[1] for note in notes]
        found = []
        for candidate in candidates:
            term = Term(tuple(candidate.rstrip("*").split()), candidate.endswith("*"))
            table = "pattern_words" if term.prefix else "pattern_text"
            hit = self._db.execute(
                f"SELECT 1 FROM {table} WHERE rowid = ? AND {table} MATCH ?",
                (rowid, f"body : ({term.to_fts()})"),
            ).fetchone()
            if hit:
                found.append(candidate)
        return tuple(found)


def _next_rank(by_length: dict[int, tuple[list[str], list[int]]]) -> int:
    return 1 + max((ranks[-1] for _, ranks in by_length.values() if ranks), default=-1)


def rank_key(hit: Hit, recency: Recency | None, has_terms: bool) -> tuple[float, int]:
    """What search orders by, computed from a hit, for merging result lists:
    (a value that is larger for a better hit, create time). Mirrors RANK_SQL
    and the no-terms order (fewer half-lives first)."""
    created = hit.pattern.create_time.ToMicroseconds()
    halves = 0.0
    if recency is not None:
        halves = max(0, recency.now_us - created) / (recency.half_life_seconds * 1e6)
    if not has_terms:
        return -halves, created
    return math.log(max(hit.keyword_score, 1e-12)) - halves * _LN2, created


def _add_expiry_column(connection: sqlite3.Connection) -> None:
    """Adds docs.expire_us to a file written before retention existed."""
    columns = {str(row[1]) for row in connection.execute("PRAGMA table_info(docs)")}
    if columns and "expire_us" not in columns:
        connection.execute("ALTER TABLE docs ADD COLUMN expire_us INTEGER NOT NULL DEFAULT 0")


def _expression(groups: list[list[Term]]) -> str:
    """AND of groups, each an OR of a term and its corrections."""
    parts = []
    for group in groups:
        inner = " OR ".join(term.to_fts() for term in group)
        parts.append(f"({inner})" if len(group) > 1 else inner)
    return " AND ".join(parts) if parts else to_fts_expression([])


def _group_source(group_by: str) -> tuple[str, str]:
    """(extra FROM clause, key expression) for a group_by field path."""
    path = group_by.split(".")
    spec = PATTERN_SCHEMA.lookup(tuple(path))
    if spec is None:
        raise ValueError(f"cannot group by unknown field {group_by!r}")
    quoted = "".join(f'."{segment}"' for segment in path)
    if spec.repeated and len(path) > 1:
        leaf = "".join(f'."{segment}"' for segment in path[1:])
        return (
            f", json_each(d.record, '$.\"{path[0]}\"') AS g",
            f"json_extract(g.value, '${leaf}')",
        )
    if spec.repeated:
        return f", json_each(d.record, '${quoted}') AS g", "g.value"
    return "", f"json_extract(d.record, '${quoted}')"


def _group_key(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)
