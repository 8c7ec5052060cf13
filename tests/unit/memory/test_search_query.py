"""The query language and the FTS5 text index it feeds."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from attune.memory.v1 import memory_pb2
from memory_service.search.index import ReadQuery, SearchIndex, every_should
from memory_service.search.query import (
    MAX_QUERY_LENGTH,
    QueryError,
    Term,
    parse_query,
    to_fts_expression,
)


class TextIndex:
    """Documents of bare text on the search index (the pattern adds only its
    success word, which no test here searches for)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._index = SearchIndex(connection)

    def upsert(self, namespace: str, doc_id: str, body: str) -> None:
        pattern = memory_pb2.Pattern(id=doc_id, content=body, success=True)
        self._index.put(namespace, pattern, doc_id)

    def remove(self, namespace: str, doc_id: str) -> None:
        self._index.delete(namespace, doc_id)

    def search(self, namespace: str, terms: list[Term], limit: int) -> list[tuple[str, float]]:
        hits, _ = self._index.search(
            ReadQuery(namespace, terms, None, limit, min_should_match=every_should(terms))
        )
        return [(hit.pattern.id, hit.score) for hit in hits]


@pytest.fixture
def index() -> Iterator[TextIndex]:
    connection = sqlite3.connect(":memory:")
    try:
        yield TextIndex(connection)
    finally:
        connection.close()


def ids(index: TextIndex, namespace: str, query: str) -> list[str]:
    return [doc_id for doc_id, _ in index.search(namespace, parse_query(query), 10)]


# --- parse_query -------------------------------------------------------------------------


def test_words_become_lower_case_terms() -> None:
    assert parse_query("Publish  PACKAGE\tquickly") == [
        Term(("publish",)),
        Term(("package",)),
        Term(("quickly",)),
    ]


def test_quoted_phrase_is_one_term() -> None:
    assert parse_query('build "Python Package" now') == [
        Term(("build",)),
        Term(("python", "package")),
        Term(("now",)),
    ]


def test_trailing_star_makes_a_prefix_term() -> None:
    assert parse_query("pack* test") == [Term(("pack",), prefix=True), Term(("test",))]


def test_star_after_a_phrase_is_not_a_prefix() -> None:
    terms = parse_query('"python pack"*')
    assert terms[0] == Term(("python", "pack"))
    assert all(not term.prefix for term in terms)


def test_unbalanced_quote_runs_to_the_end() -> None:
    assert parse_query('deploy "to pypi') == [Term(("deploy",)), Term(("to", "pypi"))]


def test_lone_quote_and_empty_phrase_are_dropped() -> None:
    assert parse_query('word "" "') == [Term(("word",))]


def test_punctuation_inside_words_splits_them() -> None:
    # Operators and syntax characters never survive into a term.
    assert parse_query("attune-services:v1") == [Term(("attune", "services", "v1"))]
    assert parse_query("a+b^c") == [Term(("a", "b", "c"))]


@pytest.mark.parametrize("text", ["", "   ", '""', '"', "*", "- + ( ) : ^", '"  *  "', "\t\n"])
def test_query_without_words_is_an_error(text: str) -> None:
    with pytest.raises(QueryError, match="no searchable words"):
        parse_query(text)


def test_over_long_query_is_an_error() -> None:
    parse_query("a" * MAX_QUERY_LENGTH)
    with pytest.raises(QueryError, match="longer than"):
        parse_query("a" * (MAX_QUERY_LENGTH + 1))


def test_fts_expression_quotes_every_term_and_ands_them() -> None:
    expression = to_fts_expression(parse_query('Release "python package" pack* OR NOT'))
    assert expression == '"release" AND "python package" AND "pack"* AND "or" AND "not"'


def test_query_error_is_a_value_error() -> None:
    assert issubclass(QueryError, ValueError)


# --- nothing reaches FTS5 as syntax -------------------------------------------------------

syntax_heavy = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("\"*()^:+-{}[],.'\\ \t\nNEARORANDNOT_")),
        st.characters(),
    ),
    max_size=60,
)


@pytest.fixture(scope="module")
def shared_index() -> Iterator[TextIndex]:
    connection = sqlite3.connect(":memory:")
    index = TextIndex(connection)
    index.upsert("ns", "one", "publish a python package to pypi")
    index.upsert("ns", "two", "near or and not: the operators of fts5")
    try:
        yield index
    finally:
        connection.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.one_of(st.text(max_size=80), syntax_heavy))
def test_any_text_is_an_error_or_a_valid_fts_query(shared_index: TextIndex, text: str) -> None:
    try:
        terms = parse_query(text)
    except QueryError:
        return
    assert terms
    for term in terms:
        assert term.words
        assert all('"' not in word for word in term.words)
    # Must not raise sqlite3.OperationalError (an FTS5 syntax error).
    found = shared_index.search("ns", terms, 5)
    assert all(doc_id in ("one", "two") for doc_id, _ in found)


@settings(max_examples=100, deadline=None)
@given(word=st.sampled_from(["near", "or", "and", "not", "NEAR", "OR", "AND", "NOT"]))
def test_operator_words_are_searched_as_words(word: str) -> None:
    connection = sqlite3.connect(":memory:")
    try:
        index = TextIndex(connection)
        index.upsert("ns", "ops", "near or and not")
        index.upsert("ns", "other", "nothing here")
        assert [doc for doc, _ in index.search("ns", parse_query(word), 5)] == ["ops"]
    finally:
        connection.close()


@settings(max_examples=100, deadline=None)
@given(word=st.from_regex(r"[a-z]{3,10}", fullmatch=True))
def test_a_document_is_found_by_each_of_its_words(word: str) -> None:
    assume(word not in {"near", "and", "not"})
    connection = sqlite3.connect(":memory:")
    try:
        index = TextIndex(connection)
        index.upsert("ns", "doc", f"intro {word} outro")
        assert [doc for doc, _ in index.search("ns", parse_query(word), 5)] == ["doc"]
        assert [doc for doc, _ in index.search("ns", parse_query(word[:2] + "*"), 5)] == ["doc"]
    finally:
        connection.close()


# --- TextIndex ---------------------------------------------------------------------------


def test_namespaces_isolate_documents(index: TextIndex) -> None:
    index.upsert("alice", "p1", "python package publishing")
    index.upsert("bob", "p1", "python package publishing")
    index.upsert("bob", "p2", "python wheels")
    assert ids(index, "alice", "python") == ["p1"]
    assert sorted(ids(index, "bob", "python")) == ["p1", "p2"]
    assert ids(index, "carol", "python") == []
    index.remove("alice", "p1")
    assert ids(index, "alice", "python") == []
    assert sorted(ids(index, "bob", "python")) == ["p1", "p2"]


def test_upsert_replaces_the_earlier_version(index: TextIndex) -> None:
    index.upsert("ns", "doc", "first draft about ruff")
    index.upsert("ns", "doc", "second draft about mypy")
    assert ids(index, "ns", "ruff") == []
    assert ids(index, "ns", "mypy") == ["doc"]
    assert ids(index, "ns", "draft") == ["doc"]  # Once, not twice.


def test_remove_removes_and_is_idempotent(index: TextIndex) -> None:
    index.upsert("ns", "a", "release notes")
    index.upsert("ns", "b", "release checklist")
    index.remove("ns", "a")
    index.remove("ns", "a")
    index.remove("ns", "never-there")
    assert ids(index, "ns", "release") == ["b"]


def test_porter_stemming_matches_inflections(index: TextIndex) -> None:
    index.upsert("ns", "doc", "publishing packages")
    assert ids(index, "ns", "package") == ["doc"]
    assert ids(index, "ns", "packages") == ["doc"]
    assert ids(index, "ns", "published") == ["doc"]


def test_diacritics_are_ignored(index: TextIndex) -> None:
    index.upsert("ns", "doc", "café résumé")
    assert ids(index, "ns", "cafe") == ["doc"]
    assert ids(index, "ns", "RESUME") == ["doc"]


def test_terms_are_anded_and_phrases_keep_order(index: TextIndex) -> None:
    index.upsert("ns", "both", "python package")
    index.upsert("ns", "reversed", "package for python")
    index.upsert("ns", "one", "python only")
    assert sorted(ids(index, "ns", "python package")) == ["both", "reversed"]
    assert ids(index, "ns", '"python package"') == ["both"]


def test_prefix_terms_match_word_starts(index: TextIndex) -> None:
    index.upsert("ns", "doc", "deployment pipeline")
    assert ids(index, "ns", "depl*") == ["doc"]
    assert ids(index, "ns", "pipe*") == ["doc"]
    assert ids(index, "ns", "ploy*") == []
    assert ids(index, "ns", "depl") == []  # Without the star it is a whole word.


@pytest.mark.parametrize(
    ("prefix", "document"),
    [
        ("deploym*", "deployment"),
        ("deploy*", "deployment"),
        ("configura*", "configuration"),
        ("publishin*", "publishing"),
        ("securi*", "security"),
    ],
)
def test_prefix_longer_than_the_stem_still_matches(
    index: TextIndex, prefix: str, document: str
) -> None:
    index.upsert("ns", "doc", document)
    assert ids(index, "ns", prefix) == ["doc"]


def test_scores_rank_best_first_and_limit_applies(index: TextIndex) -> None:
    index.upsert("ns", "weak", "package " + "filler " * 30)
    index.upsert("ns", "strong", "package package package")
    index.upsert("ns", "middle", "package " + "filler " * 3)
    found = index.search("ns", parse_query("package"), 10)
    assert [doc for doc, _ in found] == ["strong", "middle", "weak"]
    scores = [score for _, score in found]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)
    assert [doc for doc, _ in index.search("ns", parse_query("package"), 2)] == [
        "strong",
        "middle",
    ]


def test_ties_break_by_doc_id(index: TextIndex) -> None:
    for doc_id in ("c", "a", "b"):
        index.upsert("ns", doc_id, "same text")
    assert ids(index, "ns", "same") == ["a", "b", "c"]
