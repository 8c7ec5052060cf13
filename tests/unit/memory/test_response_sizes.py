"""Pages fit a response, and a damaged record fails alone (issue 10, finding 6)."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attune.memory.v1 import memory_pb2
from memory_service.search.index import PageQuery, ReadQuery, UnreadablePatternError
from memory_service.search.query import parse_query
from memory_service.security.crypto import Keyring
from memory_service.servicekit.paging import ITEM_OVERHEAD, fit_page, next_offset
from memory_service.sizes import RESPONSE_BUDGET
from memory_service.store.secure_index import SecureIndex

sizes = st.integers(min_value=0, max_value=RESPONSE_BUDGET + 10)


@settings(max_examples=300)
@given(items=st.lists(st.one_of(sizes, st.integers(0, RESPONSE_BUDGET // 3)), max_size=12))
def test_a_page_never_passes_the_budget_and_never_loses_an_item(items: list[int]) -> None:
    indexed = list(enumerate(items))
    kept, cut = fit_page(indexed, lambda item: item[1], lambda item: str(item[0]), RESPONSE_BUDGET)
    assert sum(size + ITEM_OVERHEAD for _, size in kept) <= RESPONSE_BUDGET
    end = len(items) if cut is None else cut
    assert cut is None or cut > 0 or not items  # Every page makes progress.
    # Before the cut each item is kept, unless it alone could never fit.
    assert [i for i, _ in kept] == [
        i for i, size in indexed[:end] if size + ITEM_OVERHEAD <= RESPONSE_BUDGET
    ]
    if cut is not None:
        assert (
            sum(s + ITEM_OVERHEAD for _, s in kept) + items[cut] + ITEM_OVERHEAD > RESPONSE_BUDGET
        )
    assert next_offset(40, 12, cut) == 40 + (12 if cut is None else cut)


def pattern(pattern_id: str) -> memory_pb2.Pattern:
    return memory_pb2.Pattern(
        id=pattern_id, type=memory_pb2.PATTERN_TYPE_INSIGHT, content=f"coverage gate {pattern_id}"
    )


@pytest.fixture
def damaged() -> SecureIndex:
    """An index holding a, b and c, with b's stored bytes damaged."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    index = SecureIndex(db, Keyring({}, None))
    with index.transaction():
        for pattern_id in "abc":
            index.put("ns", pattern(pattern_id), pattern_id)
    db.execute("UPDATE docs SET body = x'ffffff' WHERE doc_id = 'b'")
    return index


def test_reads_leave_a_damaged_record_out(damaged: SecureIndex) -> None:
    listed, total = damaged.page(PageQuery("ns", None, [("id", False)], 10, 0), viewer="u")
    assert [p.id for p in listed] == ["a", "c"]
    assert total == 3  # Still counted: it is there, only unreadable.
    hits, _ = damaged.search(ReadQuery("ns", parse_query("coverage"), None, 10), viewer="u")
    assert sorted(hit.pattern.id for hit in hits) == ["a", "c"]
    assert sorted(damaged.get_many("ns", ["a", "b", "c"], viewer="u")) == ["a", "c"]
    # Fuzzy correction builds its vocabulary without it.
    fuzzy, _ = damaged.search(
        ReadQuery("ns", parse_query("coverag"), None, 10, explain=True), viewer="u"
    )
    assert sorted(hit.pattern.id for hit in fuzzy) == ["a", "c"]
    assert fuzzy[0].fuzzy_expansions == ("coverag->coverage",)


def test_get_names_the_damage_and_a_write_or_delete_repairs_it(damaged: SecureIndex) -> None:
    with pytest.raises(UnreadablePatternError, match="'b'"):
        damaged.get("ns", "b", viewer="u")
    assert damaged.visible("ns", "b", viewer="u", for_write=True) == []  # A write may replace it.
    with damaged.transaction():
        assert damaged.delete("ns", "b", viewer="u")
    assert damaged.get("ns", "b", viewer="u") is None
