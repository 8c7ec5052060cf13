"""Ranked retrieval in the text engine (text_engine.py, text_query.py,
text_search.py), through the SearchIndex that every store and the
executor's fallback search with."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from attune.memory.v1 import memory_pb2
from memory_service.search.filter import compile_filter
from memory_service.search.index import ReadQuery, Recency, SearchIndex, every_should
from memory_service.search.query import Occur, Term, parse_query
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.search.text_query import PREFIX_SCORING_TERMS
from tests.support.secure_indexes import HOUR, T0, Clock


@dataclass
class Docs:
    """A SearchIndex on an in-memory database, with documents of bare text."""

    db: sqlite3.Connection
    index: SearchIndex
    clock: Clock

    def put(
        self,
        doc_id: str,
        text: str,
        *,
        hours: int = 0,
        namespace: str = "ns",
        expire_us: int = 0,
        template_id: str = "t",
    ) -> None:
        pattern = memory_pb2.Pattern(id=doc_id, content=text, success=True, template_id=template_id)
        pattern.create_time.FromMicroseconds(T0 + hours * HOUR)
        if expire_us:
            pattern.expire_time.FromMicroseconds(expire_us)
        self.index.put(namespace, pattern, f"{doc_id}:{text}")

    def search(
        self,
        terms: list[Term] | str,
        minimum: int | None = None,
        *,
        condition: str = "",
        limit: int = 50,
        offset: int = 0,
        namespace: str = "ns",
    ) -> tuple[list[str], int]:
        parsed = (parse_query(terms) if terms else []) if isinstance(terms, str) else terms
        query = ReadQuery(
            namespace,
            parsed,
            compile_filter(condition, PATTERN_SCHEMA),
            limit,
            offset,
            min_should_match=every_should(parsed) if minimum is None else minimum,
        )
        hits, total = self.index.search(query)
        return [hit.pattern.id for hit in hits], total

    def scores(self, query: str, namespace: str = "ns") -> dict[str, float]:
        terms = parse_query(query)
        hits, _ = self.index.search(ReadQuery(namespace, terms, None, 50))
        return {hit.pattern.id: hit.keyword_score for hit in hits}


@pytest.fixture
def docs() -> Iterator[Docs]:
    db = sqlite3.connect(":memory:", isolation_level=None)
    clock = Clock()
    try:
        yield Docs(db, SearchIndex(db, clock), clock)
    finally:
        db.close()


def should(*words: str) -> list[Term]:
    return [Term((word,)) for word in words]


# --- SHOULD, MUST and MUST_NOT ------------------------------------------------------------


def test_should_terms_need_the_minimum_and_more_matched_rank_first(docs: Docs) -> None:
    docs.put("three", "alpha beta gamma")
    docs.put("two", "alpha beta")
    docs.put("one", "alpha")
    docs.put("none", "delta")
    terms = should("alpha", "beta", "gamma")
    assert docs.search(terms, 1) == (["three", "two", "one"], 3)
    assert docs.search(terms, 2) == (["three", "two"], 2)
    assert docs.search(terms, 3) == (["three"], 1)
    # A minimum above the number of SHOULD terms asks for all of them.
    assert docs.search(terms, 7) == (["three"], 1)
    # No minimum: still at least one, as a query of only SHOULD terms.
    assert docs.search(terms, 0) == (["three", "two", "one"], 3)


def test_with_a_filter_a_minimum_of_zero_lets_the_words_only_rank(docs: Docs) -> None:
    docs.put("both", "alpha beta", template_id="a", hours=1)
    docs.put("one", "alpha", template_id="a", hours=2)
    docs.put("none", "delta", template_id="a", hours=3)
    docs.put("other", "alpha beta", template_id="b", hours=4)
    terms = should("alpha", "beta")
    # Needing a word, the filter's run without one is left out ...
    assert docs.search(terms, 1, condition='template_id = "a"') == (["both", "one"], 2)
    # ... needing none, every run the filter selects comes, the words ordering them.
    assert docs.search(terms, 0, condition='template_id = "a"') == (["both", "one", "none"], 3)
    # A +required word still requires.
    required = [Term(("alpha",), occur=Occur.MUST), *should("beta")]
    assert docs.search(required, 0, condition='template_id = "a"') == (["both", "one"], 2)


def test_must_is_required_must_not_excludes_and_should_only_ranks(docs: Docs) -> None:
    docs.put("plain", "alpha")
    docs.put("ranked", "alpha beta")
    docs.put("excluded", "alpha beta gamma")
    docs.put("other", "beta")
    terms = [
        Term(("alpha",), occur=Occur.MUST),
        Term(("beta",)),
        Term(("gamma",), occur=Occur.MUST_NOT),
    ]
    assert docs.search(terms, 0) == (["ranked", "plain"], 2)
    assert docs.search(terms, 1) == (["ranked"], 1)


def test_only_excluded_terms_keep_everything_else_newest_first(docs: Docs) -> None:
    docs.put("old", "alpha", hours=1)
    docs.put("new", "beta", hours=2)
    docs.put("gone", "gamma", hours=3)
    assert docs.search([Term(("gamma",), occur=Occur.MUST_NOT)]) == (["new", "old"], 2)


def test_unsearchable_terms_do_not_count_and_alone_find_nothing(docs: Docs) -> None:
    docs.put("doc", "alpha")
    assert docs.search(should("alpha", "_"), 2) == (["doc"], 1)
    assert docs.search(should("_"), 1) == ([], 0)


# --- phrases, prefixes, stemming ------------------------------------------------------------


def test_phrases_keep_their_order_and_stem_like_the_text(docs: Docs) -> None:
    docs.put("both", "publishing python packages")
    docs.put("reversed", "packages for python")
    assert docs.search('"python package"') == (["both"], 1)
    assert docs.search("python package")[1] == 2
    docs.put("joined", "a security audit")
    assert docs.search("security_audit") == (["joined"], 1)  # One word, two tokens: a phrase.


def test_a_prefix_matches_every_completion_and_ranks_by_them(docs: Docs) -> None:
    count = PREFIX_SCORING_TERMS + 20
    for n in range(count):
        docs.put(f"d{n:03d}", f"python pack{n:03d}x" + (" pack000x" if n == 5 else ""))
    found, total = docs.search("pack*")
    assert total == count  # More completions than score: all still match.
    assert found[0] == "d005"  # Two completions in it: the best BM25.
    assert docs.search("python_pack*")[1] == count  # A phrase whose last word is a prefix.
    assert docs.search("pack0*")[1] == count
    assert docs.search("deploym*") == ([], 0)


def test_a_prefix_longer_than_the_stem_matches_the_words_as_written(docs: Docs) -> None:
    docs.put("doc", "deployment configuration")
    assert docs.search("deploym*") == (["doc"], 1)
    assert docs.search("configura*") == (["doc"], 1)
    assert docs.search("deploym") == ([], 0)  # Without the star it is a whole word.


# --- fuzzy corrections ---------------------------------------------------------------------


def test_a_correction_joins_its_term_and_the_group_counts_once(docs: Docs) -> None:
    docs.put("two-corrections", "cart card")
    docs.put("correction-and-word", "card zebra")
    docs.put("word", "zebra")
    terms = should("carx", "zebra")
    # "carx" is no word of the namespace: its corrections stand in for it,
    # and a document with two of them still matches one term of two.
    assert docs.search(terms, 2) == (["correction-and-word"], 1)
    assert sorted(docs.search(terms, 1)[0]) == ["correction-and-word", "two-corrections", "word"]
    hits, _ = docs.index.search(ReadQuery("ns", terms, None, 10, min_should_match=2, explain=True))
    assert set(hits[0].fuzzy_expansions) >= {"carx->card", "carx->cart"}
    assert hits[0].matched_terms == ("zebra", "card")


def test_an_excluded_term_is_not_corrected(docs: Docs) -> None:
    docs.put("kept", "python card")
    terms = [Term(("python",)), Term(("carx",), occur=Occur.MUST_NOT)]
    assert docs.search(terms, 1) == (["kept"], 1)


# --- order ---------------------------------------------------------------------------------


def test_equal_scores_go_newest_first_then_by_id_whatever_the_insertion_order(
    docs: Docs,
) -> None:
    ids = [f"doc-{n:02d}" for n in range(30)]
    shuffled = list(ids)
    random.Random(7).shuffle(shuffled)
    for doc_id in shuffled:
        hours = 1 if doc_id in ("doc-20", "doc-25") else 0
        docs.put(doc_id, "same words here", hours=hours)
    expected = ["doc-20", "doc-25"] + [
        doc_id for doc_id in ids if doc_id not in ("doc-20", "doc-25")
    ]
    pages = [docs.search("same", limit=7, offset=offset)[0] for offset in range(0, 30, 7)]
    assert [doc_id for page in pages for doc_id in page] == expected
    assert docs.search("", condition='template_id = "t"', limit=30)[0] == expected


def test_scores_do_not_depend_on_insertion_order() -> None:
    texts = {f"d{n}": " ".join(["alpha"] * (n % 3 + 1) + ["beta"] * (n % 2)) for n in range(12)}
    found = []
    for seed in (1, 2):
        db = sqlite3.connect(":memory:", isolation_level=None)
        docs = Docs(db, SearchIndex(db), Clock())
        order = list(texts)
        random.Random(seed).shuffle(order)
        for doc_id in order:
            docs.put(doc_id, texts[doc_id])
        found.append((docs.scores("alpha beta"), docs.search("alpha beta", 1)))
    assert found[0] == found[1]


def test_a_minimum_of_should_terms_scores_alike_whatever_the_write_history() -> None:
    """The same documents, written in another order and committed in other
    batches (reads between writes): every score equal to the last bit, so
    equal runs rank alike on the memory service and the executor's fallback."""
    rng = random.Random(3)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    texts = {
        f"d{n:03d}": " ".join(rng.choice(words) for _ in range(rng.randint(4, 30)))
        for n in range(300)
    }
    terms = parse_query("alpha beta gamma delta epsilon")
    ranked = []
    for seed, read_every in ((1, 0), (2, 23)):
        db = sqlite3.connect(":memory:", isolation_level=None)
        index = SearchIndex(db)
        order = list(texts)
        random.Random(seed).shuffle(order)
        for n, doc_id in enumerate(order):
            pattern = memory_pb2.Pattern(id=doc_id, content=texts[doc_id], template_id="t")
            pattern.create_time.FromMicroseconds(T0)
            index.put("ns", pattern, doc_id)
            if read_every and n % read_every == 0:
                index.search(ReadQuery("ns", terms, None, 1))  # A commit: a new segment.
        hits, _ = index.search(ReadQuery("ns", terms, None, 300, min_should_match=3))
        ranked.append([(hit.pattern.id, hit.keyword_score) for hit in hits])
        db.close()
    assert len(ranked[0]) > 100
    assert ranked[0] == ranked[1]


def test_statistics_are_per_namespace(docs: Docs) -> None:
    docs.put("doc", "alpha beta", namespace="a")
    docs.put("other", "gamma", namespace="a")
    before = docs.scores("alpha", namespace="a")
    for n in range(20):
        docs.put(f"b{n}", "alpha alpha", namespace="b")
    assert docs.scores("alpha", namespace="a") == before
    assert docs.search("alpha", namespace="a") == (["doc"], 1)


# --- in step with SQLite -------------------------------------------------------------------


def test_reads_see_every_write_before_them(docs: Docs) -> None:
    docs.put("doc", "first draft")
    assert docs.search("draft") == (["doc"], 1)
    docs.put("doc", "second version")  # Replaced: the old words are gone.
    assert docs.search("draft") == ([], 0)
    assert docs.search("version") == (["doc"], 1)
    assert docs.index.delete("ns", "doc")
    assert docs.search("version") == ([], 0)


@pytest.mark.parametrize("built_before", [True, False])
def test_a_rolled_back_write_leaves_the_next_read(docs: Docs, built_before: bool) -> None:
    docs.put("kept", "alpha")
    if built_before:
        assert docs.search("alpha") == (["kept"], 1)
    docs.db.execute("BEGIN")
    docs.put("rolled", "alpha beta")
    docs.index.delete("ns", "kept")
    assert docs.search("alpha") == (["rolled"], 1)  # Inside: the transaction's view.
    docs.db.execute("ROLLBACK")
    assert docs.search("alpha") == (["kept"], 1)
    assert docs.search("beta") == ([], 0)


def test_expired_documents_leave_results_and_totals(docs: Docs) -> None:
    docs.put("fading", "alpha", expire_us=T0 + HOUR)
    docs.put("lasting", "alpha beta")
    assert docs.search("alpha") == (["fading", "lasting"], 2)
    docs.clock.now_us = T0 + HOUR
    assert docs.search("alpha") == (["lasting"], 1)
    assert docs.search("", condition="success = true") == (["lasting"], 1)
    # Verified in SQLite (a filter not pushed down exactly): the same.
    assert docs.search("alpha", condition='content:"alp"') == (["lasting"], 1)


def test_recency_ranks_every_match_by_decayed_score(docs: Docs) -> None:
    docs.put("old-strong", "alpha alpha alpha", hours=-1000)
    docs.put("new-weak", "alpha " + "filler " * 5, hours=0)
    for n in range(20):
        docs.put(f"middle-{n:02d}", "alpha filler", hours=-500)
    terms = parse_query("alpha")
    plain, _ = docs.index.search(ReadQuery("ns", terms, None, 1))
    assert plain[0].pattern.id == "old-strong"
    recency = Recency(half_life_seconds=3600 * 100, now_us=T0)
    decayed, total = docs.index.search(ReadQuery("ns", terms, None, 2, 0, recency))
    assert decayed[0].pattern.id == "new-weak"
    assert total == 22
    assert decayed[0].score == pytest.approx(decayed[0].keyword_score)
    assert decayed[1].recency_factor == pytest.approx(0.5**5)


def test_a_file_with_the_full_text_tables_of_earlier_versions_opens_without_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    Docs(db, SearchIndex(db), Clock()).put("doc", "kept words")
    # As a version before the text engine left them: text in FTS5 tables.
    for table, tokenizer in (("pattern_text", "porter unicode61"), ("pattern_words", "unicode61")):
        db.execute(f"CREATE VIRTUAL TABLE {table} USING fts5(ns, body, tokenize = '{tokenizer}')")
        db.execute(f"INSERT INTO {table} (rowid, ns, body) VALUES (1, 'ns', 'kept words')")  # noqa: S608
    db.close()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        docs = Docs(db, SearchIndex(db), Clock())
        assert (
            db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'pattern_%'").fetchall()
            == []
        )
        assert docs.search("kept") == (["doc"], 1)
    finally:
        db.close()
