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

from typing import TYPE_CHECKING

import tantivy

from memory_service.search.fuzzy import expand
from memory_service.search.query import Occur, Term
from memory_service.search.text_candidates import Found, Reader, View
from memory_service.search.text_engine import EXPIRE, SCHEMA, VIEW, TextEngine
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
        selection = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Must, text.ranked),
                (tantivy.Occur.Must, tantivy.Query.const_score_query(selection, 0.0)),
            ]
        )
    reader = Reader(snapshot, views, numbers, query, exact=pushed.exact, ranked=ranked)
    page, total = reader.page(selection, count)
    return reader.found(page, notes), total, notes


def _visible(views: list[int]) -> tantivy.Query:
    if len(views) == 1:
        return tantivy.Query.term_query(SCHEMA, VIEW, views[0])
    return tantivy.Query.term_set_query(SCHEMA, VIEW, views)
