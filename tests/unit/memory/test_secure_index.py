"""SecureIndex: SENSITIVE patterns sealed on disk, readable only by their owner.

Over SQLite connections and a clock the tests move; the store tests
(tests/integration) run the same rules through every backend.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.search import index as search_index
from memory_service.search.filter import (
    FilterError,
    Node,
    check_filter,
    compile_filter,
    matches,
)
from memory_service.search.index import PageQuery, ReadQuery, Recency, SearchIndex
from memory_service.search.query import parse_query
from memory_service.search.schema import PATTERN_SCHEMA, pattern_record
from memory_service.security.crypto import DecryptionError, Keyring, MissingKeyError
from memory_service.store import secure_index
from memory_service.store.secure_index import SecureIndex
from tests.unit.memory.test_sql_filter import patterns, trees

NS = "team-a"
T0 = 1_767_225_600_000_000  # 2026-01-01, in microseconds
HOUR = 3_600_000_000
SENSITIVE = common_pb2.CLASSIFICATION_SENSITIVE


def keys(*key_ids: str, active: str | None = None) -> Keyring:
    return Keyring(
        {key_id: (key_id.encode() * 32)[:32] for key_id in key_ids},
        active or (key_ids[0] if key_ids else None),
    )


@dataclass
class Clock:
    now_us: int = T0

    def __call__(self) -> int:
        return self.now_us


@dataclass
class Opened:
    """A SecureIndex over a file, reopenable with other keys."""

    path: Path
    clock: Clock = field(default_factory=Clock)
    connections: list[sqlite3.Connection] = field(default_factory=list)

    def open(self, keyring: Keyring) -> SecureIndex:
        connection = sqlite3.connect(self.path, isolation_level=None)
        self.connections.append(connection)
        connection.execute("PRAGMA journal_mode=WAL")
        return SecureIndex(connection, keyring, self.clock)

    def raw(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None)
        self.connections.append(connection)
        return connection


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Opened]:
    files = Opened(tmp_path / "index.sqlite3")
    try:
        yield files
    finally:
        for connection in files.connections:
            connection.close()


@pytest.fixture
def index(opened: Opened) -> SecureIndex:
    return opened.open(keys("k1"))


def pattern(
    pattern_id: str,
    content: str,
    *,
    owner: str = "",
    sensitive: bool = False,
    hours: int = 0,
    template_id: str = "python_package_publish",
    success: bool = True,
    expire_us: int = 0,
) -> memory_pb2.Pattern:
    made = memory_pb2.Pattern(
        id=pattern_id,
        namespace=NS,
        type=memory_pb2.PATTERN_TYPE_EXECUTION,
        content=content,
        owner=owner,
        template_id=template_id,
        success=success,
        total_cost_usd=1.0,
        classification=SENSITIVE if sensitive else common_pb2.CLASSIFICATION_INTERNAL,
    )
    made.create_time.FromMicroseconds(T0 - HOUR * 100 + HOUR * hours)
    if expire_us:
        made.expire_time.FromMicroseconds(expire_us)
    return made


def put(index: SecureIndex, *patterns: memory_pb2.Pattern, namespace: str = NS) -> None:
    with index.transaction():
        for item in patterns:
            index.put(namespace, item, f"digest-{item.id}-{item.content}")


def searched(
    index: SecureIndex, query: str, viewer: str, condition: str = ""
) -> tuple[list[str], int]:
    node = compile_filter(condition, PATTERN_SCHEMA) if condition else None
    terms = parse_query(query) if query else []
    hits, total = index.search(ReadQuery(NS, terms, node, 50), viewer=viewer)
    return [hit.pattern.id for hit in hits], total


def paged(index: SecureIndex, viewer: str) -> list[str]:
    return [p.id for p in index.page(PageQuery(NS, None, [("id", False)], 50, 0), viewer=viewer)[0]]


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
    for table in ("pattern_text", "pattern_words"):
        assert raw.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)  # noqa: S608
    facts = raw.execute(
        "SELECT count(*) FROM doc_facts WHERE rowid NOT IN (SELECT rowid FROM docs)"
    ).fetchone()
    assert facts == (0,)


def test_a_search_without_filter_counts_on_the_text_index_less_what_expired(
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
    shortcut = "SELECT count(*) FROM pattern_text WHERE pattern_text MATCH"
    live = "d.expire_us = 0 OR"
    assert searched(index, "marmot", "bob") == (["p-1", "p-2"], 2)
    assert any(statement.startswith(shortcut) for statement in statements)
    assert not any(live in statement for statement in statements)  # Nothing expired: no clause.

    statements.clear()
    opened.clock.now_us = T0 + HOUR
    assert searched(index, "marmot", "bob") == (["p-2"], 1)
    assert searched(index, "other", "bob") == ([], 0)
    assert any(statement.startswith(shortcut) for statement in statements)
    assert any(live in statement for statement in statements)
    with index.transaction():
        index.purge(opened.clock.now_us)
    statements.clear()
    assert searched(index, "marmot", "bob") == (["p-2"], 1)
    assert not any(live in statement for statement in statements)


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


# --- keys ------------------------------------------------------------------------------


def test_open_needs_the_keys_of_what_is_sealed(opened: Opened, index: SecureIndex) -> None:
    put(index, pattern("p-1", "sealed", owner="alice", sensitive=True))
    with pytest.raises(MissingKeyError, match="1 SENSITIVE patterns are stored"):
        opened.open(keys())
    with pytest.raises(DecryptionError, match="'k1'"):
        opened.open(keys("k2"))
    assert paged(opened.open(keys("k1")), "alice") == ["p-1"]


def test_an_altered_envelope_or_owner_fails_at_open(opened: Opened, index: SecureIndex) -> None:
    put(index, pattern("p-1", "sealed", owner="alice", sensitive=True))
    raw = opened.raw()
    raw.execute("UPDATE sealed_docs SET owner = 'mallory'")
    with pytest.raises(DecryptionError, match="owner column was altered"):
        opened.open(keys("k1"))
    raw.execute("UPDATE sealed_docs SET owner = 'alice', doc_id = 'p-2'")  # Moved: AD differs.
    with pytest.raises(DecryptionError, match="failed authentication"):
        opened.open(keys("k1"))


def test_rotation_then_reencrypt_then_only_the_new_key(opened: Opened, index: SecureIndex) -> None:
    put(
        index,
        pattern("s-1", "first secret", owner="alice", sensitive=True),
        pattern("s-2", "second secret", owner="bob", sensitive=True),
        pattern("p-1", "shared"),
    )
    rotated = opened.open(keys("k1", "k2", active="k2"))  # Old key still there: readable.
    assert searched(rotated, "secret", "alice") == (["s-1"], 1)
    put(rotated, pattern("s-3", "third secret", owner="alice", sensitive=True))
    progress: list[tuple[int, int]] = []
    with rotated.transaction():
        assert rotated.reencrypt(lambda done, total: progress.append((done, total))) == (2, 3)
    assert progress == [(1, 3), (2, 3), (3, 3)]
    with rotated.transaction():
        assert rotated.reencrypt() == (0, 3)

    only_new = opened.open(keys("k2"))
    assert sorted(searched(only_new, "secret", "alice")[0]) == ["s-1", "s-3"]
    assert searched(only_new, "secret", "bob") == (["s-2"], 1)


def test_plaintext_sensitive_patterns_of_an_older_version_are_sealed_at_open(
    opened: Opened,
) -> None:
    legacy = SearchIndex(opened.raw())
    legacy.put(NS, pattern("old", "legacy secret", owner="alice", sensitive=True), "d")
    with pytest.raises(MissingKeyError, match="in plaintext"):
        opened.open(keys())
    index = opened.open(keys("k1"))
    raw = opened.raw()
    assert raw.execute("SELECT count(*) FROM docs").fetchone() == (0,)
    assert raw.execute("SELECT doc_id, owner FROM sealed_docs").fetchall() == [("old", "alice")]
    assert searched(index, "legacy", "alice") == (["old"], 1)
    assert searched(index, "legacy", "bob") == ([], 0)


def test_a_search_index_file_from_before_retention_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old_schema = search_index.SCHEMA.replace(
        "    expire_us INTEGER NOT NULL DEFAULT 0,\n", ""
    ).replace(
        "CREATE INDEX IF NOT EXISTS docs_by_expiry ON docs (namespace, expire_us) "
        "WHERE expire_us > 0;\n",
        "",
    )
    assert "expire_us" not in old_schema
    with sqlite3.connect(path) as old:
        old.executescript(old_schema)
    connection = sqlite3.connect(path)
    try:
        index = SearchIndex(connection, Clock())
        index.put(NS, pattern("p-1", "x", expire_us=T0 - 1), "d")
        index.put(NS, pattern("p-2", "x"), "d")
        assert [p.id for p in index.page(PageQuery(NS, None, [], 10, 0))[0]] == ["p-2"]
    finally:
        connection.close()


# --- the property: every read shows a viewer exactly what they may see -------------------

NAMESPACES = ("n1", "n2")
OWNERS = ("alice", "bob")


@st.composite
def stored_patterns(draw: st.DrawFn) -> tuple[str, memory_pb2.Pattern]:
    made = draw(patterns())
    namespace = draw(st.sampled_from(NAMESPACES))
    made.namespace = namespace
    made.owner = draw(st.sampled_from(OWNERS))
    expiry = draw(st.sampled_from([0, T0 - 1, T0, T0 + 1]))
    if expiry:
        made.expire_time.FromMicroseconds(expiry)
    if draw(st.booleans()):
        made.embedding = b"\x00\x00\x80?"
    return namespace, made


def may_see(item: memory_pb2.Pattern, viewer: str) -> bool:
    live = not item.HasField("expire_time") or item.expire_time.ToMicroseconds() > T0
    return live and (item.classification != SENSITIVE or item.owner == viewer)


@given(
    st.lists(stored_patterns(), min_size=1, max_size=10),
    trees,
    st.sampled_from(NAMESPACES),
    st.sampled_from(OWNERS),
    st.sampled_from(["", "demo", "mypy ruff", "dem*"]),
)
@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_every_read_shows_only_the_namespaces_live_visible_patterns(
    rows: list[tuple[str, memory_pb2.Pattern]],
    tree: Node,
    namespace: str,
    viewer: str,
    query: str,
) -> None:
    try:
        condition = check_filter(tree, PATTERN_SCHEMA)
    except FilterError:
        condition = None
    connection = sqlite3.connect(":memory:", isolation_level=None)
    try:
        index = SecureIndex(connection, keys("k1"), Clock())
        # The model: per namespace and id, one shared version and one SENSITIVE
        # version per owner; a put replaces its writer's own and the shared one.
        latest: dict[tuple[str, str, str], memory_pb2.Pattern] = {}
        with index.transaction():
            for at, item in rows:
                index.put(at, item, f"d-{len(latest)}")
                mine = item.owner if item.classification == SENSITIVE else ""
                for slot in {"", item.owner}:
                    latest.pop((at, item.id, slot), None)
                latest[(at, item.id, mine)] = item
        here = {
            (pattern_id, slot): item
            for (at, pattern_id, slot), item in latest.items()
            if at == namespace and slot in ("", viewer)
        }
        visible = {key for key, item in here.items() if may_see(item, viewer)}
        passing = {
            key for key in visible if matches(condition, pattern_record(here[key]), PATTERN_SCHEMA)
        }

        def version(item: memory_pb2.Pattern) -> tuple[str, str]:
            return item.id, item.owner if item.classification == SENSITIVE else ""

        def check(found: list[memory_pb2.Pattern]) -> set[tuple[str, str]]:
            keys = [version(item) for item in found]
            for key, item in zip(keys, found, strict=True):
                assert item == here[key]  # This namespace's version, as stored.
            assert len(set(keys)) == len(keys)  # Each version once.
            return set(keys)

        listed, total = index.page(
            PageQuery(namespace, condition, [("id", False)], 50, 0), viewer=viewer
        )
        assert (check(listed), total) == (passing, len(passing))
        hits, total = index.search(ReadQuery(namespace, [], condition, 50), viewer=viewer)
        assert (check([hit.pattern for hit in hits]), total) == (passing, len(passing))
        if query:
            for where in (condition, None):
                hits, total = index.search(
                    ReadQuery(namespace, parse_query(query), where, 50), viewer=viewer
                )
                assert check([hit.pattern for hit in hits]) <= (passing if where else visible)
                assert total == len(hits)
        assert index.count(namespace, condition, "", viewer=viewer)[0] == len(passing)
        grouped = index.count(namespace, condition, "template_id", viewer=viewer)[1]
        assert sum(group.count for group in grouped) == len(passing)
        vectors = index.vectors(namespace, condition, viewer=viewer)
        assert sorted(pattern_id for pattern_id, _ in vectors) == sorted(
            pattern_id for pattern_id, owner in passing if here[(pattern_id, owner)].embedding
        )
        # By id: the viewer's own version first, then the shared one.
        every = ["a", "b", "c", "missing"]
        firsts = {
            pattern_id: here[(pattern_id, owner)]
            for owner in ("", viewer)  # The viewer's own overwrites: it comes first.
            for pattern_id in every
            if (pattern_id, owner) in visible
        }
        assert index.get_many(namespace, every, viewer=viewer) == firsts
        for pattern_id in every:
            got = index.get(namespace, pattern_id, viewer=viewer)
            assert (None if got is None else got.pattern) == firsts.get(pattern_id)
    finally:
        connection.close()
