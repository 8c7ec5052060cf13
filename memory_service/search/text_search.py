"""A ranked read: the text engine retrieves and orders, SQLite serves.

One read covers one or more views (a source's namespace: a store's shared
documents and the caller's own SENSITIVE ones), all in the base
namespace's one index, so every result ranks on one score.

1. The terms (with their fuzzy corrections, over every view's vocabulary)
   become a tantivy query (text_query.py); the filter is pushed down
   (text_filter.py), with visibility (the views) and expiry, as a clause
   that does not score.
2. A filter tantivy cannot match exactly is evaluated by SQLite (the
   filter's meaning of record), once per view over its namespace, and the
   rowids that pass join the query (`_passing`), so the query selects
   exactly the read's documents.
3. Candidates come best first, in batches: BM25 top-k, or newest first when
   no term ranks (text_candidates.py). The order is exact and deterministic:
   score, then create time (newest first), then id, then view; tantivy
   breaks ties by document address, so reading goes on while the page
   boundary's score ties with unread hits.
4. Recency (score x 0.5^(age / half-life)) is not a top-k tantivy can rank:
   hits still come in BM25 order, and reading stops once no unread one
   could outrank the page (the factor is at most 1). An old page can mean
   reading every match: the slower path.
5. The total is tantivy's count of the query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tantivy

from memory_service.search import index_sql
from memory_service.search.fuzzy import expand
from memory_service.search.query import Occur, Term
from memory_service.search.text_candidates import Found, Reader, View
from memory_service.search.text_engine import EXPIRE, ROWID, SCHEMA, VIEW, TextEngine
from memory_service.search.text_query import text_query

if TYPE_CHECKING:
    from memory_service.search.index import ReadQuery

__all__ = ["Found", "View", "search"]


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
    if not pushed.exact:
        clauses.append((tantivy.Occur.Must, _passing(views, numbers, query)))
    clauses += [(tantivy.Occur.MustNot, excluded) for excluded in text.excluded]
    if expired_before is not None:
        assert isinstance(expired_before, int)
        expired = tantivy.Query.range_query(
            SCHEMA, EXPIRE, tantivy.FieldType.Integer, 1, expired_before
        )
        clauses.append((tantivy.Occur.MustNot, expired))
    selection = tantivy.Query.boolean_query(clauses)
    ranked = text.ranked is not None
    if text.ranked is None and positive:
        selection = tantivy.Query.empty_query()  # Every ranking term was unsearchable.
    elif text.ranked is not None:
        # Minimum 0 (a relaxed search with a filter): the words only rank the
        # filter's matches; a +required word still requires.
        optional = (
            query.min_should_match == 0
            and query.condition is not None
            and not any(term.occur is Occur.MUST for term in query.terms)
        )
        selection = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Should if optional else tantivy.Occur.Must, text.ranked),
                (tantivy.Occur.Must, tantivy.Query.const_score_query(selection, 0.0)),
            ]
        )
    reader = Reader(snapshot, views, numbers, query, ranked=ranked)
    page, total = reader.page(selection, count)
    return reader.found(page, notes), total, notes


def _passing(views: list[View], numbers: dict[int, int], query: ReadQuery) -> tantivy.Query:
    """The documents SQLite finds passing the filter (and live), for a filter
    not pushed down exactly: one statement per view over its namespace.

    Not candidate by candidate: the SQL of list and map values selects
    through doc_facts subqueries, which SQLite evaluates whole for each
    statement (measured at 100,000 patterns: 0.6-40 s for a page and its
    total checked in batches of candidates, against one pass here, as a
    count cost before the text engine).
    """
    where = index_sql.COMPILER.compile(query.condition)
    by_view = {number: engine_view for engine_view, number in numbers.items()}
    found: list[tantivy.Query] = []
    for number, view in enumerate(views):
        live, now = view.live
        rowids = [
            int(rowid)
            for (rowid,) in view.connection.execute(
                f"SELECT d.rowid FROM docs d WHERE d.namespace = ? AND {where.sql}{live}",  # noqa: S608
                [view.namespace, *where.params, *now],
            )
        ]
        if rowids:
            found.append(
                tantivy.Query.boolean_query(
                    [
                        (tantivy.Occur.Must, _visible([by_view[number]])),
                        (tantivy.Occur.Must, tantivy.Query.term_set_query(SCHEMA, ROWID, rowids)),
                    ]
                )
            )
    if not found:
        return tantivy.Query.empty_query()
    if len(found) == 1:
        return found[0]
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, query) for query in found])


def _visible(views: list[int]) -> tantivy.Query:
    if len(views) == 1:
        return tantivy.Query.term_query(SCHEMA, VIEW, views[0])
    return tantivy.Query.term_set_query(SCHEMA, VIEW, views)
