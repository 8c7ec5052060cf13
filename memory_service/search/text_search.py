"""A ranked read: the text engine retrieves, SQLite verifies and serves.

One read covers one or more views (a source's namespace: a store's shared
documents and the caller's own SENSITIVE ones), all in the base
namespace's one index, so every result ranks on one score.

1. The terms (with their fuzzy corrections, over every view's vocabulary)
   become a tantivy query (text_query.py); the filter is pushed down
   (text_filter.py), with visibility (the views) and expiry, as a clause
   that does not score.
2. Candidates come best first, in batches: BM25 top-k (block-max WAND), or
   newest first when no term ranks. When the push-down was not exact each
   batch is verified by SQLite (`rowid IN (...) AND <filter SQL> AND live`),
   and more are fetched while too few pass.
3. The order is exact and deterministic: (score, then create time, newest
   first, then id, then view) over every candidate that could still belong
   on the page; tantivy breaks ties by document address, so fetching goes
   on while the page boundary's score ties with unseen ones.
4. Recency (score x 0.5^(age / half-life)) is not a top-k tantivy can rank:
   candidates still come in BM25 order, and fetching stops once no unseen
   one could outrank the page (the factor is at most 1). An old page can
   mean reading every match: the slower path.
5. The total is tantivy's count when the filter was pushed down exactly;
   otherwise every match is verified (the slower path).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import tantivy

from attune.memory.v1 import memory_pb2
from memory_service.search import index_sql
from memory_service.search.documents import Decode
from memory_service.search.fuzzy import FuzzyVocabulary, expand
from memory_service.search.query import Occur, Term
from memory_service.search.text_engine import (
    EXPIRE,
    ROWID,
    SCHEMA,
    VIEW,
    Snapshot,
    TextEngine,
)
from memory_service.search.text_filter import CREATED
from memory_service.search.text_query import contains, text_query

if TYPE_CHECKING:
    from memory_service.search.index import ReadQuery

LN2 = math.log(2)
_CHUNK = 500  # Rowids per verifying statement.
_FIRST_EXTRA = 8  # Fetched past the page at first, to see whether its boundary ties.


@dataclass(frozen=True)
class View:
    """A source's namespace, as one read sees it."""

    source: int
    namespace: str
    connection: sqlite3.Connection
    vocabulary: FuzzyVocabulary
    decode: Decode
    live: tuple[str, list[object]]  # Its expiry clause on docs `d` ("" while none expired).


@dataclass(frozen=True)
class Found:
    """One result: the pattern and what its score is made of."""

    pattern: memory_pb2.Pattern
    score: float  # keyword_score x recency_factor; the factor alone when no term ranks.
    keyword_score: float
    recency_factor: float
    matched_terms: tuple[str, ...]


@dataclass
class _Candidate:
    score: float  # The keyword score; 0 when no term ranks.
    view: int  # Index into the read's views.
    rowid: int
    created: int
    address: tantivy.DocAddress
    doc_id: str = ""


class _Order:
    """The ranking of candidates, and a bound on any not fetched yet."""

    def __init__(self, query: ReadQuery, ranked: bool) -> None:
        self._ranked = ranked
        self._recency = query.recency

    def halves(self, created: int) -> float:
        if self._recency is None:
            return 0.0
        age = max(0, self._recency.now_us - created)
        return age / (self._recency.half_life_seconds * 1e6)

    def rank(self, candidate: _Candidate) -> float:
        """Larger is better: log(score x factor), which never underflows."""
        if not self._ranked:
            return 0.0
        return math.log(max(candidate.score, 1e-12)) - self.halves(candidate.created) * LN2

    def key(self, candidate: _Candidate) -> tuple[float, int, str, int]:
        return (-self.rank(candidate), -candidate.created, candidate.doc_id, candidate.view)

    def settled(self, kth: _Candidate, last: _Candidate) -> bool:
        """Whether no candidate after `last` (in fetch order) can come before `kth`."""
        if self._ranked:
            return self.rank(kth) > math.log(max(last.score, 1e-12))
        return kth.created > last.created


def search(
    engine: TextEngine, views: list[View], query: ReadQuery, *, count: bool
) -> tuple[list[Found], int | None, list[str]]:
    """The page of the query over the views, the total if `count`, and the
    fuzzy notes ("typed->matched")."""
    snapshot = engine.snapshot(query.namespace)
    numbers = {engine.view(view.source, view.namespace): n for n, view in enumerate(views)}
    groups: list[list[Term]] = []
    notes: list[str] = []
    if query.terms:
        groups, notes = expand([(view.vocabulary, view.namespace) for view in views], query.terms)
    text = text_query(snapshot, groups, query.min_should_match)
    positive = any(term.occur is not Occur.MUST_NOT for term in query.terms)
    pushed = snapshot.pushdown.compile(query.condition)
    # Expired documents are left out as of the views' clock (they share one).
    expired_before = next((view.live[1][0] for view in views if view.live[0]), None)
    clauses = [(tantivy.Occur.Must, _visible(sorted(numbers)))]
    if pushed.query is not None:
        clauses.append((tantivy.Occur.Must, pushed.query))
    clauses += [(tantivy.Occur.MustNot, excluded) for excluded in text.excluded]
    if expired_before is not None:
        expired = tantivy.Query.range_query(
            SCHEMA, EXPIRE, tantivy.FieldType.Integer, 1, _whole(expired_before)
        )
        clauses.append((tantivy.Occur.MustNot, expired))
    selection = tantivy.Query.boolean_query(clauses)
    ranked = text.ranked is not None
    if text.ranked is None and positive:
        selection = tantivy.Query.empty_query()  # Every ranking term was unsearchable.
    elif text.ranked is not None:
        selection = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Must, text.ranked),
                (tantivy.Occur.Must, tantivy.Query.const_score_query(selection, 0.0)),
            ]
        )
    reader = _Reader(snapshot, views, numbers, query, pushed.exact, ranked)
    page, total = reader.page(selection, count)
    found = [reader.found(candidate, notes) for candidate in page]
    return [result for result in found if result is not None], total, notes


def _counted(result: tantivy.SearchResult) -> int:
    """The count of a search asked to count (missing from tantivy's type stub)."""
    count = getattr(result, "count", None)
    assert isinstance(count, int)
    return count


def _whole(value: object) -> int:
    """A fast field's (or SQLite's) integer."""
    assert isinstance(value, int)
    return value


def _visible(views: list[int]) -> tantivy.Query:
    if len(views) == 1:
        return tantivy.Query.term_query(SCHEMA, VIEW, views[0])
    return tantivy.Query.term_set_query(SCHEMA, VIEW, views)


class _Reader:
    """Fetches, verifies and orders the candidates of one read."""

    def __init__(
        self,
        snapshot: Snapshot,
        views: list[View],
        numbers: dict[int, int],
        query: ReadQuery,
        exact: bool,
        ranked: bool,
    ) -> None:
        self._snapshot = snapshot
        self._views = views
        self._numbers = numbers
        self._query = query
        self._exact = exact
        self._ranked = ranked
        self._order = _Order(query, ranked)
        self._bodies: dict[tuple[int, int], memory_pb2.Pattern | None] = {}
        where = index_sql.COMPILER.compile(query.condition)
        self._where = where.sql, where.params

    def _fetch(
        self, selection: tantivy.Query, limit: int, offset: int, count: bool
    ) -> tuple[list[_Candidate], int | None]:
        searcher = self._snapshot.searcher
        if self._ranked:
            result = searcher.search(selection, limit, count=count, offset=offset)
        else:
            result = searcher.search(
                selection, limit, count=count, offset=offset, order_by_field=CREATED
            )
        hits = result.hits
        addresses = [address for _, address in hits]
        views = searcher.fast_field_values(VIEW, addresses)
        rowids = searcher.fast_field_values(ROWID, addresses)
        created = searcher.fast_field_values(CREATED, addresses)
        columns = zip(hits, views, rowids, created, strict=True)
        candidates = [
            _Candidate(
                float(score) if self._ranked else 0.0,
                self._numbers[_whole(view)],
                _whole(rowid),
                _whole(when),
                address,
            )
            for (score, address), view, rowid, when in columns
        ]
        total = _counted(result) if count else None
        return candidates, total

    def page(self, selection: tantivy.Query, count: bool) -> tuple[list[_Candidate], int | None]:
        """The page's candidates in order, and the total if `count`."""
        need = self._query.offset + self._query.limit
        passing: list[_Candidate] = []
        total: int | None = None
        fetched = 0
        batch = need + _FIRST_EXTRA
        while True:
            candidates, counted = self._fetch(
                selection, batch, fetched, count and self._exact and fetched == 0
            )
            total = counted if counted is not None else total
            fetched += len(candidates)
            passing += self._verified(candidates)
            if len(candidates) < batch:
                break  # Every match is fetched.
            if len(passing) >= need:
                passing.sort(key=self._order.key)
                if need == 0 or self._order.settled(passing[need - 1], candidates[-1]):
                    break
            batch *= 2
        passing.sort(key=self._order.key)
        if count and total is None:
            total = len(passing) if len(candidates) < batch else self._verified_total(selection)
        return passing[self._query.offset : need], total

    def _verified(self, candidates: list[_Candidate]) -> list[_Candidate]:
        """The candidates SQLite holds (and whose filter holds, unless pushed
        down exactly), each with its id."""
        passing: list[_Candidate] = []
        for number, view in enumerate(self._views):
            mine = {c.rowid: c for c in candidates if c.view == number}
            for rowid, doc_id in self._rows(view, list(mine), "d.doc_id"):
                candidate = mine[_whole(rowid)]
                candidate.doc_id = str(doc_id)
                passing.append(candidate)
        return passing

    def _rows(
        self, view: View, rowids: list[int], columns: str, *, verify: bool = True
    ) -> list[tuple[Any, ...]]:
        """(rowid, columns...) of the view's docs among the rowids (that pass the filter)."""
        rows: list[tuple[Any, ...]] = []
        where, params = "", []
        if verify and not self._exact:
            sql, filter_params = self._where
            live, now = view.live
            where, params = f" AND {sql}{live}", [*filter_params, *now]
        for start in range(0, len(rowids), _CHUNK):
            chunk = rowids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows += view.connection.execute(
                f"SELECT d.rowid, {columns} FROM docs d "  # noqa: S608 - columns are constants
                f"WHERE d.namespace = ? AND d.rowid IN ({marks}){where}",
                [view.namespace, *chunk, *params],
            ).fetchall()
        return rows

    def _verified_total(self, selection: tantivy.Query) -> int:
        """How many matches pass the filter, verifying every one (not pushed down exactly)."""
        searcher = self._snapshot.searcher
        matches = _counted(searcher.search(selection, 1, count=True))
        if not matches:
            return 0
        candidates, _ = self._fetch(selection, matches, 0, False)
        total = 0
        for number, view in enumerate(self._views):
            rowids = [c.rowid for c in candidates if c.view == number]
            total += len(self._rows(view, rowids, "1"))
        return total

    def found(self, candidate: _Candidate, notes: list[str]) -> Found | None:
        """The candidate's result (None when its stored bytes do not parse)."""
        view = self._views[candidate.view]
        rows = self._rows(view, [candidate.rowid], "d.body", verify=False)
        if not rows:
            return None
        pattern = view.decode(bytes(rows[0][1]), view.namespace, candidate.doc_id)
        if pattern is None:
            return None
        factor = 0.5 ** self._order.halves(candidate.created)
        matched: tuple[str, ...] = ()
        if self._query.explain and self._query.terms:
            matched = self._matched(candidate, notes)
        score = candidate.score * factor if self._ranked else factor
        return Found(pattern, score, candidate.score, factor, matched)

    def _matched(self, candidate: _Candidate, notes: list[str]) -> tuple[str, ...]:
        """Which terms (or their corrections) the document contains."""
        texts = [" ".join(t.words) + ("*" if t.prefix else "") for t in self._query.terms]
        texts += [note.split("->", 1)[1] for note in notes]
        found = []
        for text in texts:
            term = Term(tuple(text.rstrip("*").split()), text.endswith("*"))
            if contains(self._snapshot, term, candidate.address):
                found.append(text)
        return tuple(found)
