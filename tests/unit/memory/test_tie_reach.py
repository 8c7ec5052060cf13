"""The first pass of a ranked read fetches as far as the namespace's ties
reach (tie_reach.py): learned from earlier reads, and never changing which
results a read returns."""

from __future__ import annotations

import random
import sqlite3

from hypothesis import given
from hypothesis import strategies as st

from attune.memory.v1 import memory_pb2
from memory_service.search.index import ReadQuery, SearchIndex
from memory_service.search.query import parse_query
from memory_service.search.text_engine import TextEngine
from memory_service.search.tie_reach import FIRST_REACH, MOST_REACH, TieReach
from tests.support.secure_indexes import HOUR, T0, Clock


def test_a_read_needing_more_raises_the_reach_at_once_with_a_margin() -> None:
    ties = TieReach()
    ties.observe(1000)
    assert ties.reach == 1250


def test_reads_needing_less_lower_it_slowly_and_never_below_the_first_reach() -> None:
    ties = TieReach()
    ties.observe(1000)
    ties.observe(10)
    assert 1200 < ties.reach < 1250  # One read needing little is not the namespace's habit.
    for _ in range(1000):
        ties.observe(10)
    assert ties.reach == FIRST_REACH


@given(st.lists(st.integers(min_value=0, max_value=10**6), max_size=50))
def test_the_reach_stays_within_its_bounds(needs: list[int]) -> None:
    ties = TieReach()
    for needed in needs:
        ties.observe(needed)
        assert FIRST_REACH <= ties.reach <= MOST_REACH
        assert ties.reach >= min(MOST_REACH, needed)


def test_pages_inside_big_tied_groups_are_exact_before_and_after_the_reach_is_learned() -> None:
    """Two groups of 300 equal texts (so equal scores), written shuffled: every
    page is (score, newest, id) order, whether its first pass stopped inside
    a group (a fresh namespace) or fetched the learned reach."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    engine = TextEngine()
    index = SearchIndex(db, Clock(), engine=engine)
    written = [(f"short-{n:03d}", "alpha", n) for n in range(300)]
    written += [(f"long-{n:03d}", "alpha beta gamma delta", n) for n in range(300)]
    random.Random(3).shuffle(written)
    for doc_id, text, hours in written:
        pattern = memory_pb2.Pattern(id=doc_id, content=text, success=True, template_id="t")
        pattern.create_time.FromMicroseconds(T0 + (hours // 2) * HOUR)  # Pairs share a time.
        index.put("ns", pattern, doc_id)
    # Shorter text scores higher (BM25); then newest; then id.
    expected = sorted(
        (doc_id for doc_id, _, _ in written),
        key=lambda doc_id: (
            not doc_id.startswith("short"),
            -(int(doc_id.split("-")[1]) // 2),
            doc_id,
        ),
    )

    def page(offset: int) -> list[str]:
        hits, total = index.search(ReadQuery("ns", parse_query("alpha"), None, 10, offset))
        assert total == 600
        return [hit.pattern.id for hit in hits]

    offsets = (0, 150, 295, 300, 590)
    fresh = {offset: page(offset) for offset in offsets}
    learned = engine.snapshot("ns").ties.reach
    assert learned > FIRST_REACH  # The first reads needed more than the first reach.
    again = {offset: page(offset) for offset in offsets}
    assert fresh == again == {offset: expected[offset : offset + 10] for offset in offsets}
    db.close()
