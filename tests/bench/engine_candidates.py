"""Search engines the engine evaluation compares, over one embedded store file.

- `sqlite_rank_first`: the cheapest better SQLite plan. FTS5 ranks inside
  the full-text table (`ORDER BY rank`, BM25 in C, no join per match), and
  the filter runs on the indexed docs columns only for the best-ranked rows,
  a batch at a time, until a page is full.
- `TantivyEngine`: a RAM tantivy index built from the store file (text,
  the filterable fields, form answers as JSON), queried with the text as
  SHOULD clauses with a minimum-should-match and the filter as tantivy
  clauses, so retrieval never scores a row the filter rejects.

Both use the query language's minimum-should-match rule (reading.py), so
they answer the same question; the FTS5 engine (SearchIndex before issue
15's engine) requires every word.
Benchmark code: enough of the filter language for the benchmark's filters.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import orjson
import tantivy

from attune.memory.v1 import memory_pb2
from memory_service.search import index_sql
from memory_service.search.documents import searchable_text
from memory_service.search.filter import And, Node, Not, Or, Restriction, Star
from memory_service.search.index import decode_pattern
from memory_service.search.query import Term, to_fts_expression
from memory_service.search.reading import minimum_should_match

# FTS5's `porter unicode61 remove_diacritics 2`, as tantivy filters.
STEMMED = "attune_stem"
_NUMBERS = {"total_cost_usd", "total_duration_seconds", "agent_count"}
_KEYWORDS = {"template_id", "run_id", "runner", "type", "classification"}
_LISTS = {"agents.tier": "tier", "agents.role": "role", "tags": "tag"}
# The writer's memory budget (tantivy splits it between its threads).
WRITER_HEAP = 128_000_000
# Per comparison: (lower, upper) bound, each inclusive (True), exclusive
# (False) or absent (None).
_BOUNDS: dict[str, tuple[bool | None, bool | None]] = {
    "<": (None, False),
    "<=": (None, True),
    ">": (False, None),
    ">=": (True, None),
}


def fts_namespace_token(namespace: str) -> str:
    """The namespace as one full-text token, as the FTS5 engine (before
    tantivy) wrote it into files of that version: the index scoped a match
    by it."""
    return "n" + namespace.encode().hex()


def fetch_page(
    db: sqlite3.Connection, namespace: str, rowids: list[int]
) -> list[memory_pb2.Pattern]:
    """The patterns of rowids, in that order (what every engine returns)."""
    if not rowids:
        return []
    marks = ",".join("?" * len(rowids))
    bodies = dict(db.execute(f"SELECT rowid, body FROM docs WHERE rowid IN ({marks})", rowids))
    decoded = (decode_pattern(bodies[rowid], namespace, rowid) for rowid in rowids)
    return [pattern for pattern in decoded if pattern is not None]


# --- SQLite, ranked inside FTS5 -------------------------------------------------


def _fts_should(terms: list[Term], minimum: int) -> str:
    """FTS5 has no minimum-should-match: an OR over the AND of each
    `minimum`-combination of the terms says the same."""
    quoted = [term.to_fts() for term in terms]
    combos = [" AND ".join(combo) for combo in itertools.combinations(quoted, minimum)]
    return " OR ".join(f"({combo})" for combo in combos)


def sqlite_rank_first(
    db: sqlite3.Connection, namespace: str, terms: list[Term], condition: Node | None, limit: int
) -> list[memory_pb2.Pattern]:
    """The best `limit` patterns by BM25 that pass the filter (see module doc)."""
    token = fts_namespace_token(namespace)
    expression = _fts_should(terms, minimum_should_match(len(terms)))
    match = f'ns : "{token}" AND body : ({expression})'
    where = index_sql.COMPILER.compile(condition)
    ranked = db.execute(
        "SELECT rowid FROM pattern_text WHERE pattern_text MATCH ? "
        "AND rank MATCH 'bm25(0.0, 1.0)' ORDER BY rank",
        (match,),
    )
    found: list[int] = []
    batch = 4 * limit
    while len(found) < limit:
        rowids = [int(row[0]) for row in ranked.fetchmany(batch)]
        if not rowids:
            break
        marks = ",".join("?" * len(rowids))
        passed = {
            int(row[0])
            for row in db.execute(
                f"SELECT d.rowid FROM docs d WHERE d.rowid IN ({marks}) AND {where.sql}",
                [*rowids, *where.params],
            )
        }
        found += [rowid for rowid in rowids if rowid in passed]
        batch = min(batch * 4, 4096)  # A selective filter: read further faster.
    ranked.close()
    return fetch_page(db, namespace, found[:limit])


def has_text_table(db: sqlite3.Connection) -> bool:
    """Whether the store file has the FTS5 engine's stemmed text table."""
    found = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'pattern_text'").fetchone()
    return found is not None


def sqlite_count_every_word(
    db: sqlite3.Connection, namespace: str, terms: list[Term], condition: Node | None
) -> int:
    """How many patterns contain every term and pass the filter, by FTS5 and SQL."""
    token = fts_namespace_token(namespace)
    match = f'ns : "{token}" AND body : ({to_fts_expression(terms)})'
    where = index_sql.COMPILER.compile(condition)
    row = db.execute(
        "SELECT count(*) FROM pattern_text t JOIN docs d ON d.rowid = t.rowid "
        f"WHERE pattern_text MATCH ? AND {where.sql}",
        [match, *where.params],
    ).fetchone()
    return int(row[0])


# --- tantivy ------------------------------------------------------------------------


def _analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("rowid", indexed=True, fast=True)
    builder.add_text_field("body", tokenizer_name=STEMMED, index_option="position")
    for name in (*_KEYWORDS, *_LISTS.values()):
        builder.add_text_field(name, tokenizer_name="raw", index_option="basic")
    builder.add_boolean_field("success", indexed=True, fast=True)
    for name in _NUMBERS:
        builder.add_float_field(name, indexed=True, fast=True)
    builder.add_integer_field("create_time_us", indexed=True, fast=True)
    builder.add_json_field("form", tokenizer_name="raw", fast=True, index_option="basic")
    return builder.build()


@dataclass(frozen=True)
class Built:
    """How a build went: documents, seconds reading SQLite, seconds indexing."""

    documents: int
    read_seconds: float
    index_seconds: float


class TantivyEngine:
    """One namespace of a store file as a RAM tantivy index."""

    def __init__(self, path: str | None = None) -> None:
        self.schema = _schema()
        self.index = tantivy.Index(self.schema, path=path)
        self.analyzer = _analyzer()
        self.index.register_tokenizer(STEMMED, self.analyzer)
        self.searcher = self.index.searcher()

    def build(self, db: sqlite3.Connection, namespace: str, heap_size: int = WRITER_HEAP) -> Built:
        """Indexes every document of the namespace, from the docs table alone
        (the store of record: its text is the stored pattern's)."""
        writer = self.index.writer(heap_size=heap_size)
        rows = db.execute(
            "SELECT rowid, body, record, create_time_us FROM docs WHERE namespace = ?",
            (namespace,),
        )
        count, reading, indexing = 0, 0.0, 0.0
        while True:
            started = time.perf_counter()
            chunk = rows.fetchmany(5000)
            documents = [self._document(namespace, *row) for row in chunk]
            added = time.perf_counter()
            reading += added - started
            if not chunk:
                break
            for document in documents:
                writer.add_document(document)
            count += len(chunk)
            indexing += time.perf_counter() - added
        started = time.perf_counter()
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()
        self.searcher = self.index.searcher()
        return Built(count, reading, indexing + time.perf_counter() - started)

    def _document(
        self, namespace: str, rowid: int, body: bytes, record_json: str, created: int
    ) -> Any:
        pattern = decode_pattern(body, namespace, rowid)
        record = orjson.loads(record_json)
        document = tantivy.Document()
        document.add_unsigned("rowid", rowid)
        if pattern is not None:  # An unreadable one can still be filtered, not found by text.
            document.add_text("body", searchable_text(pattern))
        document.add_integer("create_time_us", created)
        document.add_boolean("success", bool(record["success"]))
        for name in _NUMBERS:
            document.add_float(name, float(record[name]))
        for name in _KEYWORDS:
            document.add_text(name, str(record[name]))
        for agent in record["agents"]:
            document.add_text("tier", agent["tier"])
            document.add_text("role", agent["role"])
        for tag in record["tags"]:
            document.add_text("tag", tag)
        if record["form_responses"]:
            document.add_json("form", record["form_responses"])
        return document

    # --- queries ----------------------------------------------------------------------

    def text_query(self, terms: list[Term], minimum: int) -> tantivy.Query:
        """Each term a SHOULD clause (a phrase when it has several words)."""
        clauses = []
        for term in terms:
            words: list[str | tuple[int, str]] = [
                token for word in term.words for token in self.analyzer.analyze(word)
            ]
            if len(words) == 1:
                query = tantivy.Query.term_query(self.schema, "body", str(words[0]))
            else:
                query = tantivy.Query.phrase_query(self.schema, "body", words)
            clauses.append((tantivy.Occur.Should, query))
        return tantivy.Query.boolean_query(clauses, minimum_number_should_match=minimum)

    def filter_query(self, node: Node) -> tantivy.Query:
        """The filter as tantivy clauses (the benchmark's subset of the language)."""
        if isinstance(node, And):
            return _all(tantivy.Occur.Must, [self.filter_query(c) for c in node.children])
        if isinstance(node, Or):
            return _all(tantivy.Occur.Should, [self.filter_query(c) for c in node.children])
        if isinstance(node, Not):
            return tantivy.Query.boolean_query(
                [
                    (tantivy.Occur.Must, tantivy.Query.all_query()),
                    (tantivy.Occur.MustNot, self.filter_query(node.child)),
                ]
            )
        return self._restriction(node)

    def _restriction(self, node: Restriction) -> tantivy.Query:
        name, op, value = ".".join(node.path), node.op, node.value
        if isinstance(value, Star) or op == ":":
            raise NotImplementedError(f"benchmark filter subset: {name} {op}")
        if op == "!=" and name not in _LISTS:  # Through a list, != is "some element differs".
            return self.filter_query(Not(Restriction(node.path, "=", value, node.bare)))
        if name.startswith("form_responses."):
            literal = _query_literal(value)
            clause = f"{literal}" if op == "=" else f"{op}{literal}"
            return self.index.parse_query(f"form.{name.split('.', 1)[1]}:{clause}", ["form"])
        if name in _NUMBERS:
            assert isinstance(value, float)
            lower, upper = (True, True) if op == "=" else _BOUNDS[op]
            return tantivy.Query.range_query(
                self.schema,
                name,
                tantivy.FieldType.Float,
                value if lower is not None else None,
                value if upper is not None else None,
                include_lower=lower is not False,
                include_upper=upper is not False,
            )
        if op != "=":
            raise NotImplementedError(f"benchmark filter subset: {name} {op}")
        if name == "success":
            return tantivy.Query.term_query(self.schema, "success", value)
        field = _LISTS.get(name, name)
        text = str(value).upper() if field in ("tier", "type", "classification") else str(value)
        return tantivy.Query.term_query(self.schema, field, text, index_option="basic")

    def top(
        self, terms: list[Term], condition: Node | None, limit: int, *, count: bool = False
    ) -> tuple[list[int], int | None]:
        """Rowids of the best `limit` matches (BM25), and their total when `count`."""
        query = self.text_query(terms, minimum_should_match(len(terms)))
        if condition is not None:
            hard = tantivy.Query.const_score_query(self.filter_query(condition), 0.0)
            query = tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, query), (tantivy.Occur.Must, hard)]
            )
        result = self.searcher.search(query, limit, count=count)
        addresses = [address for _, address in result.hits]
        rowids = [r for r in self.searcher.fast_field_values("rowid", addresses) if r is not None]
        return [int(r) for r in rowids], matched(result) if count else None


def matched(result: tantivy.SearchResult) -> int:
    """How many documents a search counted (its stub leaves `count` out)."""
    return int(result.count)  # type: ignore[attr-defined]


def _all(occur: tantivy.Occur, queries: list[tantivy.Query]) -> tantivy.Query:
    return tantivy.Query.boolean_query([(occur, query) for query in queries])


def _query_literal(value: object) -> str:
    """A filter literal in tantivy's query syntax (JSON leaves)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return orjson.dumps(str(value)).decode()
