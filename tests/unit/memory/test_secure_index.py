"""SecureIndex: SENSITIVE patterns sealed on disk, readable only by their owner.

Over SQLite connections and a clock the tests move; the store tests
(tests/integration) run the same rules through every backend. Here:
visibility, merging the two halves, retention, moving between the halves.
Keys and older files are in test_secure_index_keys.py, the property that
every read shows exactly what a viewer may see in test_secure_index_property.py.
"""

from __future__ import annotations

import pytest

from memory_service.search.index import PageQuery, ReadQuery, Recency
from memory_service.search.query import parse_query
from memory_service.security.crypto import MissingKeyError
from memory_service.store import secure_index
from memory_service.store.secure_index import SecureIndex
from tests.support.secure_indexes import (  # Helpers, and the fixtures.
    HOUR,
    NS,
    T0,
    Opened,
    index,
    keys,
    opened,
    paged,
    pattern,
    put,
    searched,
)

__all__ = ["index", "opened"]  # Fixtures: imported for pytest.


# --- visibility ------------------------------------------------------------------------


@pytest.fixture
def mixed(index: SecureIndex) -> SecureIndex:
    """Two shared patterns, two of alice's SENSITIVE ones, one of bob's."""
    embedded = pattern("a-secret", "alice ledger zinnia", owner="alice", sensitive=True, hours=3)
    embedded.embedding = b"\x01" * 8
    put(
        index,
        pattern("shared-1", "shared zinnia notes", owner="alice", hours=1),
        pattern("shared-2", "shared release notes", owner="bob", hours=5),
        embedded,
        pattern("a-other", "alice ledger two", owner="alice", sensitive=True, hours=4),
        pattern("b-secret", "bob ledger zinnia", owner="bob", sensitive=True, hours=2),
    )
    return index


def test_sensitive_patterns_are_read_only_by_their_owner(mixed: SecureIndex) -> None:
    for viewer, own in [("alice", ["a-other", "a-secret"]), ("bob", ["b-secret"]), ("eve", [])]:
        visible = sorted(["shared-1", "shared-2", *own])
        assert paged(mixed, viewer) == visible
        assert sorted(searched(mixed, "ledger", viewer)[0]) == own
        assert searched(mixed, "ledger", viewer)[1] == len(own)
        assert sorted(searched(mixed, "", viewer)[0]) == visible
        assert mixed.count(NS, None, "", viewer=viewer)[0] == len(visible)
        everything = ["shared-1", "shared-2", "a-secret", "a-other", "b-secret"]
        assert sorted(mixed.get_many(NS, everything, viewer=viewer)) == visible
        for pattern_id in everything:
            assert (mixed.get(NS, pattern_id, viewer=viewer) is not None) is (pattern_id in visible)
        vectors = [pattern_id for pattern_id, _ in mixed.vectors(NS, None, viewer=viewer)]
        assert vectors == (["a-secret"] if viewer == "alice" else [])
    # Query words are the shared ones only: no template of a SENSITIVE-only kind leaks.
    put(mixed, pattern("b-only", "x", owner="bob", sensitive=True, template_id="payroll_run"))
    assert mixed.query_vocabulary(NS, viewer="nobody") == (["python_package_publish"], [])


def test_fuzzy_corrections_never_suggest_another_owners_words(mixed: SecureIndex) -> None:
    hits, _ = mixed.search(ReadQuery(NS, parse_query("ledgr"), None, 10), viewer="eve")
    assert hits == []
    hits, _ = mixed.search(ReadQuery(NS, parse_query("ledgr"), None, 10), viewer="bob")
    assert [hit.pattern.id for hit in hits] == ["b-secret"]
    assert hits[0].fuzzy_expansions == ("ledgr->ledger",)


def test_only_a_visible_pattern_can_be_deleted(mixed: SecureIndex) -> None:
    with mixed.transaction():
        assert not mixed.delete(NS, "a-secret", viewer="bob")
        assert mixed.delete(NS, "shared-1", viewer="bob")  # Not SENSITIVE: anyone's.
        assert mixed.delete(NS, "a-secret", viewer="alice")
        assert not mixed.delete(NS, "a-secret", viewer="alice")
    assert paged(mixed, "alice") == ["a-other", "shared-2"]


def test_writes_see_only_the_writers_own_and_the_shared_version(mixed: SecureIndex) -> None:
    (found,) = mixed.visible(NS, "b-secret", viewer="bob")
    assert found.pattern.owner == "bob"
    assert found.fingerprint == "digest-b-secret-bob ledger zinnia"
    assert mixed.visible(NS, "b-secret", viewer="alice") == []  # Bob's id, not alice's.
    assert mixed.visible(NS, "missing", viewer="bob") == []
    # Alice's own SENSITIVE pattern under bob's id: each sees their own, first.
    put(mixed, pattern("b-secret", "alice's own zinnia", owner="alice", sensitive=True))
    put(mixed, pattern("b-secret", "a shared zinnia", owner="carol"))
    for owner in ("alice", "bob"):
        own, shared = mixed.visible(NS, "b-secret", viewer=owner)
        assert (own.pattern.owner, shared.pattern.owner) == (owner, "carol")
        got = mixed.get(NS, "b-secret", viewer=owner)
        assert got is not None
        assert got.pattern.owner == owner
    assert [v.pattern.owner for v in mixed.visible(NS, "b-secret", viewer="eve")] == ["carol"]


# --- merging the two halves --------------------------------------------------------------


def test_merged_pages_follow_the_order_and_never_overlap(mixed: SecureIndex) -> None:
    whole, total = mixed.page(PageQuery(NS, None, [("create_time", True)], 50, 0), viewer="alice")
    assert [p.id for p in whole] == ["shared-2", "a-other", "a-secret", "shared-1"]
    assert total == 4
    pages = [
        mixed.page(PageQuery(NS, None, [("create_time", True)], 1, n), viewer="alice")
        for n in range(4)
    ]
    assert [p.id for chunk, _ in pages for p in chunk] == [p.id for p in whole]
    assert all(page_total == 4 for _, page_total in pages)
    by_id, _ = mixed.page(PageQuery(NS, None, [("id", True)], 50, 0), viewer="alice")
    assert [p.id for p in by_id] == ["shared-2", "shared-1", "a-secret", "a-other"]
    # Equal create times: the id decides, as in one index.
    put(mixed, pattern("a-tie", "tie", owner="alice", sensitive=True, hours=5))
    tied, _ = mixed.page(PageQuery(NS, None, [("create_time", True)], 2, 0), viewer="alice")
    assert [p.id for p in tied] == ["a-tie", "shared-2"]


def test_merged_search_ranks_by_score_then_newest(mixed: SecureIndex) -> None:
    # Without terms: newest first across both halves, and pages that tile.
    assert searched(mixed, "", "alice") == (["shared-2", "a-other", "a-secret", "shared-1"], 4)
    recency = Recency(half_life_seconds=3600, now_us=T0)
    hits, total = mixed.search(
        ReadQuery(NS, parse_query("zinnia"), None, 10, 0, recency), viewer="alice"
    )
    assert total == 2
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert [hit.pattern.id for hit in hits] == ["a-secret", "shared-1"]  # Newer, so decays less.
    first, _ = mixed.search(
        ReadQuery(NS, parse_query("zinnia"), None, 1, 0, recency), viewer="alice"
    )
    second, _ = mixed.search(
        ReadQuery(NS, parse_query("zinnia"), None, 1, 1, recency), viewer="alice"
    )
    assert [hit.pattern.id for hit in first + second] == ["a-secret", "shared-1"]
    # Filters apply to both halves.
    assert searched(mixed, "", "alice", 'create_time >= "2025-12-28T00:00:00Z"') == (
        ["shared-2", "a-other"],
        2,
    )


def test_the_owners_best_sensitive_match_comes_first_on_the_first_page(
    index: SecureIndex,
) -> None:
    # Shared matches, and the owner's SENSITIVE pattern is the best one (the
    # word three times in a short text): one ranking puts it first. (Ranked
    # apart, a word every SENSITIVE pattern holds scored next to nothing
    # there, so it came after every shared match.)
    put(
        index,
        *(pattern(f"shared-{n:02d}", f"ledger entry number {n} of the month") for n in range(5)),
        *(pattern(f"other-{n:02d}", f"unrelated entry number {n}") for n in range(15)),
        pattern("own", "ledger ledger ledger", owner="alice", sensitive=True),
        pattern("theirs", "ledger ledger ledger", owner="bob", sensitive=True),
    )
    terms = parse_query("ledger")
    hits, total = index.search(ReadQuery(NS, terms, None, 3), viewer="alice")
    assert hits[0].pattern.id == "own"
    assert "theirs" not in [hit.pattern.id for hit in hits]
    assert total == 6
    # The same document shared would score the same: one score for both halves.
    put(index, pattern("own-shared", "ledger ledger ledger"))
    hits, _ = index.search(ReadQuery(NS, terms, None, 2), viewer="alice")
    assert hits[0].keyword_score == hits[1].keyword_score
    assert sorted(hit.pattern.id for hit in hits) == ["own", "own-shared"]


def test_merged_counts_sum_groups_and_sort_by_count_then_key(index: SecureIndex) -> None:
    put(
        index,
        pattern("p-1", "x", template_id="beta"),
        pattern("p-2", "x", template_id="beta", success=False),
        pattern("p-3", "x", template_id="gamma"),
        pattern("s-1", "x", owner="alice", sensitive=True, template_id="alpha"),
        pattern("s-2", "x", owner="alice", sensitive=True, template_id="gamma"),
        pattern("s-3", "x", owner="alice", sensitive=True, template_id="gamma"),
    )
    total, groups = index.count(NS, None, "template_id", viewer="alice")
    assert total == 6
    assert [(g.key, g.count, g.success_count, g.total_cost_usd) for g in groups] == [
        ("gamma", 3, 3, 3.0),
        ("beta", 2, 1, 2.0),
        ("alpha", 1, 1, 1.0),
    ]
    total, groups = index.count(NS, None, "", viewer="alice")
    assert (total, [(g.key, g.count) for g in groups]) == (6, [("", 6)])
    total, groups = index.count(NS, None, "template_id", viewer="bob")
    assert [(g.key, g.count) for g in groups] == [("beta", 2), ("gamma", 1)]


# --- retention -------------------------------------------------------------------------


def test_expired_patterns_leave_every_read_and_purge_deletes_them(
    opened: Opened, index: SecureIndex
) -> None:
    soon = T0 + HOUR
    put(
        index,
        pattern("shared-exp", "fading package", expire_us=soon),
        pattern("shared-kept", "lasting package"),
        pattern(
            "secret-exp", "fading secret package", owner="alice", sensitive=True, expire_us=soon
        ),
        pattern("secret-kept", "lasting secret package", owner="alice", sensitive=True),
    )
    assert sorted(searched(index, "package", "alice")[0]) == [
        "secret-exp",
        "secret-kept",
        "shared-exp",
        "shared-kept",
    ]
    assert index.expired(opened.clock.now_us) == []

    opened.clock.now_us = soon  # An expiry is inclusive.
    live = ["secret-kept", "shared-kept"]
    assert sorted(searched(index, "package", "alice")[0]) == live
    assert searched(index, "package", "alice")[1] == 2
    assert sorted(searched(index, "", "alice")[0]) == live
    assert paged(index, "alice") == live
    assert index.count(NS, None, "template_id", viewer="alice")[0] == 2
    assert index.get(NS, "shared-exp", viewer="alice") is None
    assert index.get(NS, "secret-exp", viewer="alice") is None
    assert index.visible(NS, "secret-exp", viewer="alice") == []
    assert sorted(index.get_many(NS, ["shared-exp", "secret-exp", *live], viewer="alice")) == live
    with index.transaction():
        assert not index.delete(NS, "shared-exp", viewer="alice")
    assert index.expired(soon) == [(NS, "secret-exp", "alice"), (NS, "shared-exp", "")]

    with index.transaction():
        assert index.purge(soon) == 2
    assert index.expired(soon) == []
    raw = opened.raw()
    assert raw.execute("SELECT count(*) FROM docs").fetchone() == (1,)
    assert raw.execute("SELECT count(*) FROM sealed_docs").fetchone() == (1,)
    # No full-text table keeps text on disk: ranking runs in RAM (text_engine.py).
    tables = raw.execute("SELECT name FROM sqlite_master WHERE sql LIKE '%fts5%'").fetchall()
    assert tables == []
    facts = raw.execute(
        "SELECT count(*) FROM doc_facts WHERE rowid NOT IN (SELECT rowid FROM docs)"
    ).fetchone()
    assert facts == (0,)


def test_a_search_counts_in_the_text_engine_less_what_expired(
    opened: Opened, index: SecureIndex
) -> None:
    put(
        index,
        pattern("p-1", "marmot", expire_us=T0 + HOUR),
        pattern("p-2", "marmot"),
        pattern("p-3", "other", expire_us=T0 + HOUR),
    )
    statements: list[str] = []
    opened.connections[0].set_trace_callback(statements.append)
    assert searched(index, "marmot", "bob") == (["p-1", "p-2"], 2)
    # Counted (and the filter applied) by the engine: SQLite only serves the page.
    assert not any("count(" in statement for statement in statements)

    statements.clear()
    opened.clock.now_us = T0 + HOUR
    assert searched(index, "marmot", "bob") == (["p-2"], 1)
    assert searched(index, "other", "bob") == ([], 0)
    assert not any("count(" in statement for statement in statements)
    with index.transaction():
        index.purge(opened.clock.now_us)
    assert searched(index, "marmot", "bob") == (["p-2"], 1)


# --- moving between the halves -------------------------------------------------------


def test_a_reclassified_pattern_moves_between_the_halves(
    opened: Opened, index: SecureIndex
) -> None:
    put(index, pattern("p-1", "marmalade recipe", owner="alice"))
    put(index, pattern("p-1", "marmalade recipe", owner="alice", sensitive=True))
    raw = opened.raw()
    assert raw.execute("SELECT count(*) FROM docs").fetchone() == (0,)
    assert raw.execute("SELECT owner FROM sealed_docs").fetchall() == [("alice",)]
    assert searched(index, "marmalade", "bob") == ([], 0)
    assert searched(index, "marmalade", "alice") == (["p-1"], 1)

    # Another owner's id space: bob's version stands beside alice's.
    put(index, pattern("p-1", "marmalade recipe", owner="bob", sensitive=True))
    assert searched(index, "marmalade", "alice") == (["p-1"], 1)
    assert searched(index, "marmalade", "bob") == (["p-1"], 1)
    assert sorted(raw.execute("SELECT owner FROM sealed_docs").fetchall()) == [
        ("alice",),
        ("bob",),
    ]

    # Shared by bob: it replaces his SENSITIVE version, never alice's.
    put(index, pattern("p-1", "marmalade recipe, shared", owner="bob"))
    assert raw.execute("SELECT owner FROM sealed_docs").fetchall() == [("alice",)]
    assert searched(index, "marmalade", "alice") == (["p-1", "p-1"], 2)
    with index.transaction():
        assert index.delete(NS, "p-1", viewer="alice")  # Her own first.
    assert raw.execute("SELECT count(*) FROM sealed_docs").fetchone() == (0,)
    assert searched(index, "marmalade", "alice") == (["p-1"], 1)
    assert searched(index, "marmalade", "bob") == (["p-1"], 1)


def test_a_file_from_before_per_owner_ids_is_rekeyed(opened: Opened) -> None:
    first = opened.open(keys("k1"))
    put(first, pattern("p-1", "alice's marmalade", owner="alice", sensitive=True))
    first.close()
    old_schema = secure_index.SEALED_SCHEMA.replace(
        "PRIMARY KEY (namespace, doc_id, owner)", "PRIMARY KEY (namespace, doc_id)"
    )
    assert old_schema != secure_index.SEALED_SCHEMA
    raw = opened.raw()
    raw.executescript("ALTER TABLE sealed_docs RENAME TO newer; DROP INDEX sealed_by_expiry;")
    raw.executescript(old_schema)
    raw.executescript("INSERT INTO sealed_docs SELECT * FROM newer; DROP TABLE newer;")
    index = opened.open(keys("k1"))
    put(index, pattern("p-1", "bob's marmalade", owner="bob", sensitive=True))  # Fits the key.
    for owner in ("alice", "bob"):
        got = index.get(NS, "p-1", viewer=owner)
        assert got is not None
        assert got.pattern.content == f"{owner}'s marmalade"
    primary = [row[1] for row in raw.execute("PRAGMA table_info(sealed_docs)") if row[5]]
    assert primary == ["namespace", "doc_id", "owner"]


def test_a_failed_transaction_changes_neither_half(index: SecureIndex) -> None:
    put(index, pattern("p-1", "kept", owner="alice", sensitive=True))

    def fail_midway() -> None:
        with index.transaction():
            index.put(NS, pattern("p-2", "rolled back", owner="alice", sensitive=True), "d")
            index.remove(NS, "p-1", "alice")
            raise RuntimeError("the commit never happens")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert paged(index, "alice") == ["p-1"]
    assert searched(index, "rolled", "alice") == ([], 0)


def test_storing_sensitive_without_a_key_changes_nothing(opened: Opened) -> None:
    index = opened.open(keys())
    put(index, pattern("p-1", "shared"))
    with pytest.raises(MissingKeyError), index.transaction():
        index.put(NS, pattern("p-1", "now sensitive", owner="alice", sensitive=True), "d")
    assert paged(index, "alice") == ["p-1"]
