"""The text engine: ranked retrieval (BM25, top-k) in tantivy RAM indexes
derived from the search index's SQLite tables.

SQLite stays the store of record and the filter's meaning of record; this
engine keeps, per BASE namespace, one tantivy index in RAM (never on disk:
SENSITIVE plaintext is in it) of every document of that namespace held by
the SQLite sources attached to it. A store attaches both its halves (the
shared docs, and the in-memory SENSITIVE docs, whose namespaces are
`<namespace>␟<owner>`), so one index holds a namespace's shared and
SENSITIVE documents, each tagged with its view (source, full namespace):
visibility is a filter clause, and every caller's results rank on one score.

Statistics are per base namespace: BM25's document counts, average length
and document frequencies come from the namespace's own documents, so
namespaces stay boundaries, and the memory service and the executor's
fallback holding the same runs compute the same scores.

Side channel (accepted, documented): another owner's SENSITIVE documents of
the namespace count in the document frequencies and average length, so a
score can shift by whether someone else's SENSITIVE text holds a word. A
score reveals no text and no document, and a caller cannot tell one
owner's contribution apart from another's shared documents.

Also in the statistics, until tantivy merges their segments (as in Lucene):
documents deleted or replaced since the index was built. Scores are a
function of the writes an index saw, not of their order or of timing.

Consistency with SQLite: `put` and `delete` only note the (source,
namespace, id) as touched; before a read, `snapshot` re-reads the touched
documents FROM SQLITE (delete by key, add back if present), commits and
reloads: read-your-writes, and a burst of writes costs one commit at the
next read. Outside a transaction the touched set is then cleared; inside
one it is kept, so after a rollback the next read re-syncs those documents
to what SQLite holds again. An index built while a source was inside a
transaction is rebuilt at the first read outside one.

An index is built at the first read of its namespace (or by `warm`), from
the docs tables; how long it took is logged.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import tantivy

from memory_service.search.documents import Decode, searchable_text
from memory_service.search.text_filter import (
    CREATED,
    FACTS,
    FACTS_SQL,
    NUMBER_FIELDS,
    NUMBERS_SQL,
    FilterPushdown,
    Numbers,
)
from memory_service.search.tie_reach import TieReach

log = logging.getLogger("attune.search.text_engine")

# Between a namespace and an owner in the namespace of a SENSITIVE scope;
# namespaces are [a-z0-9._-], so none contains it.
SCOPE_SEPARATOR = "\x1f"

BODY = "body"  # Stemmed words, with positions (phrases).
WORDS = "words"  # Words as written (lower-cased, unaccented): prefix terms.
KEY = "key"  # "<view>␟<id>": what a re-sync deletes by.
VIEW = "view"  # Which (source, namespace) holds the document: visibility.
ROWID = "rowid"  # Its docs rowid in that source.
EXPIRE = "expire"  # docs.expire_us (0: never).
_STEM = "attune_stem"
_WORDS = "attune_words"
# Longer tokens are not indexed (nor searched): ids and digests, not words.
MAX_TOKEN_BYTES = 256
# The write buffer of a build, and of a re-sync (tantivy's minimum).
BUILD_HEAP = 64_000_000
SYNC_HEAP = 15_000_000
# Writers kept open (each with its threads) across reads; others are
# reopened when needed (about a millisecond).
OPEN_WRITERS = 4
# Past this many touched documents a re-sync rebuilds instead.
REBUILD_TOUCHED = 20_000


def analyzer(stemmed: bool) -> tantivy.TextAnalyzer:
    """The analysis of indexed text and query words alike: words split on
    anything not a letter or digit, lower-cased, diacritics removed, and
    for the body, English (Snowball) stems."""
    builder = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_BYTES))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
    )
    if stemmed:
        builder = builder.filter(tantivy.Filter.stemmer("english"))
    return builder.build()


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field(BODY, tokenizer_name=_STEM, index_option="position")
    builder.add_text_field(WORDS, tokenizer_name=_WORDS, index_option="position")
    builder.add_text_field(KEY, tokenizer_name="raw", index_option="basic")
    builder.add_json_field(FACTS, tokenizer_name="raw", index_option="basic")
    builder.add_unsigned_field(VIEW, indexed=True, fast=True)
    builder.add_unsigned_field(ROWID, indexed=True, fast=True)
    builder.add_integer_field(CREATED, indexed=True, fast=True)
    builder.add_integer_field(EXPIRE, indexed=True, fast=True)
    for name in NUMBER_FIELDS:
        builder.add_float_field(name, indexed=True, fast=True)
    return builder.build()


SCHEMA = _schema()
# A docs row as the engine reads it (see _document).
_ROW_SQL = (
    "SELECT d.rowid, d.namespace, d.doc_id, d.body, d.create_time_us, d.expire_us, "  # noqa: S608
    f"{', '.join(f'd.{name}' for name in NUMBER_FIELDS)}, {FACTS_SQL} FROM docs d "
)


def base_namespace(namespace: str) -> str:
    """The namespace a (maybe SENSITIVE-scope) namespace belongs to."""
    return namespace.split(SCOPE_SEPARATOR, 1)[0]


def _key(view: int, doc_id: str) -> str:
    return f"{view}{SCOPE_SEPARATOR}{doc_id}"


@dataclass(frozen=True)
class Snapshot:
    """A namespace's index as of now, for one read."""

    searcher: tantivy.Searcher
    pushdown: FilterPushdown
    stemmed: tantivy.TextAnalyzer
    words: tantivy.TextAnalyzer
    ties: TieReach  # The namespace's, shared by its reads.


@dataclass(frozen=True)
class _Source:
    connection: sqlite3.Connection
    decode: Decode


@dataclass
class _Space:
    """One base namespace's index."""

    index: tantivy.Index
    numbers: Numbers = field(default_factory=Numbers)
    # (source, namespace, id) written since the last re-sync (or kept, in a transaction).
    touched: set[tuple[int, str, str]] = field(default_factory=set)
    provisional: bool = False  # Built while a source was inside a transaction.
    ties: TieReach = field(default_factory=TieReach)


class TextEngine:
    """The tantivy indexes of the sources attached to it (see the module docstring).

    One caller at a time, as SearchIndex: every source's connection is used
    by the thread that calls.
    """

    def __init__(self) -> None:
        self._sources: list[_Source] = []
        self._spaces: dict[str, _Space] = {}
        self._views: dict[tuple[int, str], int] = {}
        self._writers: OrderedDict[str, tantivy.IndexWriter] = OrderedDict()
        self._stemmed = analyzer(stemmed=True)
        self._words = analyzer(stemmed=False)

    def attach(self, connection: sqlite3.Connection, decode: Decode) -> int:
        """Adds a SQLite source (a connection holding a `docs` table); its number."""
        self._sources.append(_Source(connection, decode))
        return len(self._sources) - 1

    def view(self, source: int, namespace: str) -> int:
        """The number that tags the documents of a source's namespace."""
        return self._views.setdefault((source, namespace), len(self._views))

    def touch(self, source: int, namespace: str, doc_id: str) -> None:
        """Notes a written (or deleted) document, re-read at the next read."""
        space = self._spaces.get(base_namespace(namespace))
        if space is not None:  # Not built yet: the build reads SQLite as it is then.
            space.touched.add((source, namespace, doc_id))

    def warm(self, namespace: str) -> None:
        """Builds (or brings up to date) the namespace's index now, not at the first read."""
        self.snapshot(namespace)

    def snapshot(self, namespace: str) -> Snapshot:
        """The base namespace's index, in step with SQLite, ready to search."""
        base = base_namespace(namespace)
        busy = any(source.connection.in_transaction for source in self._sources)
        space = self._spaces.get(base)
        if (
            space is None
            or (space.provisional and not busy)
            or len(space.touched) > REBUILD_TOUCHED
        ):
            space = self._build(base, busy)
        else:
            self._sync(base, space)
        return Snapshot(
            space.index.searcher(),
            FilterPushdown(SCHEMA, space.numbers),
            self._stemmed,
            self._words,
            space.ties,
        )

    # --- building and syncing --------------------------------------------------------

    def _new_index(self) -> tantivy.Index:
        index = tantivy.Index(SCHEMA)  # No path: in RAM.
        index.register_tokenizer(_STEM, self._stemmed)
        index.register_tokenizer(_WORDS, self._words)
        index.config_reader(reload_policy="manual")
        return index

    def _build(self, base: str, busy: bool) -> _Space:
        started = time.perf_counter()
        self._writers.pop(base, None)  # Releases the old index's writer first.
        space = _Space(self._new_index(), provisional=busy)
        writer = space.index.writer(BUILD_HEAP, num_threads=1)
        added = 0
        for number, source in enumerate(self._sources):
            rows = source.connection.execute(
                f"{_ROW_SQL} WHERE d.namespace = ? OR (d.namespace >= ? AND d.namespace < ?)",
                (base, base + SCOPE_SEPARATOR, base + chr(ord(SCOPE_SEPARATOR) + 1)),
            )
            for row in rows:
                writer.add_document(self._document(number, row))
                added += 1
            # Every source's numbers, whatever their namespace: extra values
            # match nothing (see text_filter.Numbers).
            for path, value in source.connection.execute(NUMBERS_SQL):
                space.numbers.add(str(path), float(value))
        writer.commit()
        space.index.reload()
        self._spaces[base] = space
        self._keep_writer(base, writer)
        log.info(
            "text index built",
            extra={
                "namespace": base,
                "documents": added,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return space

    def _sync(self, base: str, space: _Space) -> None:
        """Re-reads the touched documents from SQLite into the index."""
        if not space.touched:
            return
        writer = self._writer(base, space)
        kept: set[tuple[int, str, str]] = set()
        for entry in sorted(space.touched):
            number, namespace, doc_id = entry
            source = self._sources[number]
            writer.delete_documents_by_term(KEY, _key(self.view(number, namespace), doc_id))
            row = source.connection.execute(
                f"{_ROW_SQL} WHERE d.namespace = ? AND d.doc_id = ?", (namespace, doc_id)
            ).fetchone()
            if row is not None:
                writer.add_document(self._document(number, row))
                numbers = source.connection.execute(
                    "SELECT path, v FROM doc_facts WHERE rowid = ? "
                    "AND typeof(v) IN ('integer', 'real')",
                    (row[0],),
                )
                for path, value in numbers:
                    space.numbers.add(str(path), float(value))
            if source.connection.in_transaction:
                kept.add(entry)  # A rollback would bring back what SQLite held before.
        writer.commit()
        space.index.reload()
        space.touched = kept

    def _writer(self, base: str, space: _Space) -> tantivy.IndexWriter:
        writer = self._writers.pop(base, None)
        if writer is None:
            writer = space.index.writer(SYNC_HEAP, num_threads=1)
        self._keep_writer(base, writer)
        return writer

    def _keep_writer(self, base: str, writer: tantivy.IndexWriter) -> None:
        self._writers[base] = writer
        self._writers.move_to_end(base)
        while len(self._writers) > OPEN_WRITERS:
            self._writers.popitem(last=False)

    def _document(self, source: int, row: tuple[Any, ...]) -> tantivy.Document:
        """A docs row (_ROW_SQL) as an index document: its text (when its body
        parses), its facts and marks (text_filter.py) and ordering fields."""
        rowid, namespace, doc_id, body, created, expire, *numbers, facts = row
        view = self.view(source, namespace)
        document = tantivy.Document()
        document.add_text(KEY, _key(view, doc_id))
        document.add_unsigned(VIEW, view)
        document.add_unsigned(ROWID, rowid)
        document.add_integer(CREATED, created)
        document.add_integer(EXPIRE, expire)
        for name, value in zip(NUMBER_FIELDS, numbers, strict=True):
            document.add_float(name, float(value))
        document.add_json(FACTS, facts)
        pattern = self._sources[source].decode(bytes(body), namespace, doc_id)
        if pattern is not None:
            text = searchable_text(pattern)
            document.add_text(BODY, text)
            document.add_text(WORDS, text)
        return document
