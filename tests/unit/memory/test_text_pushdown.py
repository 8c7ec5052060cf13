"""Filters pushed down into the text engine, then verified in SQLite, find
exactly what brute force finds, ranked the same.

Brute force: every document of the namespace whose stemmed words hold the
terms (as many SHOULD terms as the minimum asks), filtered by the Python
matcher (filter.matches), ordered by score (the engine's, without filter),
then newest first, then id.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune.memory.v1 import memory_pb2
from memory_service.search.documents import searchable_text
from memory_service.search.filter import FilterError, Node, Restriction, check_filter, matches
from memory_service.search.index import ReadQuery, SearchIndex
from memory_service.search.query import Term
from memory_service.search.schema import PATTERN_SCHEMA, pattern_record
from memory_service.search.text_engine import SCHEMA, analyzer
from memory_service.search.text_filter import MARKS_SQL, FilterPushdown, Numbers
from tests.unit.memory.test_sql_filter import patterns, trees

WORDS = ["demo", "mypy", "ruff", "premium", "cheap", "linter", "runner", "x"]
STEM = analyzer(stemmed=True)


def _stems(pattern: memory_pb2.Pattern) -> set[str]:
    return set(STEM.analyze(searchable_text(pattern)))


def _brute_force(
    rows: list[memory_pb2.Pattern], terms: list[Term], minimum: int, tree: Node | None
) -> list[memory_pb2.Pattern]:
    wanted = [STEM.analyze(term.words[0])[0] for term in terms]
    # With a filter, a minimum of 0 lets the words only rank its matches.
    needed = 0 if minimum == 0 and tree is not None else max(1, min(minimum, len(wanted)))
    return [
        row
        for row in rows
        if (not wanted or sum(word in _stems(row) for word in wanted) >= needed)
        and matches(tree, pattern_record(row), PATTERN_SCHEMA)
    ]


def _checked(tree: Node | None) -> bool:
    """Whether the tree fits the schema (others are refused before any search)."""
    try:
        check_filter(tree, PATTERN_SCHEMA)
    except FilterError:
        return False
    return True


@contextlib.contextmanager
def _indexed(rows: list[memory_pb2.Pattern]) -> Iterator[tuple[sqlite3.Connection, SearchIndex]]:
    """The rows, ids p0, p1..., in a search index of namespace "ns"."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        index = SearchIndex(db)
        for number, row in enumerate(rows):
            row.id = f"p{number}"
            index.put("ns", row, row.id)
        yield db, index
    finally:
        db.close()


@given(
    rows=st.lists(patterns(), min_size=1, max_size=8),
    tree=st.one_of(st.none(), trees),
    words=st.lists(st.sampled_from(WORDS), max_size=3, unique=True),
    minimum=st.integers(0, 3),
    window=st.tuples(st.integers(0, 4), st.integers(1, 4)),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_pushed_down_and_verified_equals_brute_force(
    rows: list[memory_pb2.Pattern],
    tree: Node | None,
    words: list[str],
    minimum: int,
    window: tuple[int, int],
) -> None:
    if not _checked(tree):
        return
    with _indexed(rows) as (_, index):
        terms = [Term((word,)) for word in words]
        offset, limit = window
        # The engine's own scores, without the filter (which never scores).
        unfiltered, _ = index.search(ReadQuery("ns", terms, None, 100, min_should_match=minimum))
        scores = {hit.pattern.id: hit.keyword_score for hit in unfiltered}
        expected = _brute_force(rows, terms, minimum, tree)
        # A row matching none of the words (minimum 0 with a filter) scores 0.
        assert all(row.id in scores for row in expected if minimum > 0 or tree is None)
        expected.sort(
            key=lambda row: (-scores.get(row.id, 0.0), -row.create_time.ToMicroseconds(), row.id)
        )
        hits, total = index.search(
            ReadQuery("ns", terms, tree, limit, offset, min_should_match=minimum)
        )
        assert [hit.pattern.id for hit in hits] == [
            row.id for row in expected[offset : offset + limit]
        ]
        assert total == len(expected)


@given(rows=st.lists(patterns(), min_size=1, max_size=6), tree=trees)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_an_exact_push_down_needs_no_verification(
    rows: list[memory_pb2.Pattern], tree: Node
) -> None:
    """What the push-down calls exact matches exactly the filter's documents."""
    if not _checked(tree):
        return
    with _indexed(rows) as (db, index):
        snapshot = index._engine.snapshot("ns")  # The engine's own view.
        pushed = snapshot.pushdown.compile(tree)
        if pushed.query is None:
            found = {row.id for row in rows}
        else:
            hits = snapshot.searcher.search(pushed.query, 100).hits
            rowids = snapshot.searcher.fast_field_values("rowid", [a for _, a in hits])
            found = {
                str(doc_id)
                for (doc_id,) in db.execute(
                    "SELECT doc_id FROM docs WHERE rowid IN (SELECT value FROM json_each(?))",
                    (json.dumps(rowids),),
                )
            }
        wanted = {row.id for row in rows if matches(tree, pattern_record(row), PATTERN_SCHEMA)}
        assert found >= wanted  # Always a superset,
        if pushed.exact:
            assert found == wanted  # and exactly it when it says so.


@given(rows=st.lists(patterns(), min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_marks_written_with_a_document_are_those_sql_makes_for_older_files(
    rows: list[memory_pb2.Pattern],
) -> None:
    with _indexed(rows) as (db, _):
        for written, made in db.execute(f"SELECT d.marks, {MARKS_SQL} FROM docs d"):  # noqa: S608
            assert sorted(json.loads(written)) == sorted(json.loads(made))


def test_numbers_in_lists_push_down_as_the_values_in_range() -> None:
    numbers = Numbers()
    for value in (0.0, 80.0, 85.5, -3.0):
        numbers.add("form_responses.coverage", value)
    assert numbers.between("form_responses.coverage", 80.0, None, True, True) == [80.0, 85.5]
    assert numbers.between("form_responses.coverage", None, 80.0, True, False) == [-3.0, 0.0]
    pushdown = FilterPushdown(SCHEMA, numbers)
    assert pushdown.compile(Restriction(("form_responses", "coverage"), ">=", 80.0)).exact
    assert not pushdown.compile(Restriction(("form_responses", "name"), ":", "demo")).exact
