"""SecureIndex: every read shows a viewer exactly what they may see.

A property over random patterns, filters, namespaces, viewers and queries,
checked against a model. Part of the SecureIndex tests (test_secure_index.py).
"""

from __future__ import annotations

import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune.memory.v1 import memory_pb2
from memory_service.search.filter import FilterError, Node, check_filter, matches
from memory_service.search.index import PageQuery, ReadQuery, every_should
from memory_service.search.query import parse_query
from memory_service.search.schema import PATTERN_SCHEMA, pattern_record
from memory_service.store.secure_index import SecureIndex
from tests.support.secure_indexes import SENSITIVE, T0, Clock, keys
from tests.unit.memory.test_sql_filter import patterns, trees

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
            terms = parse_query(query)
            for where in (condition, None):
                hits, total = index.search(
                    ReadQuery(namespace, terms, where, 50, min_should_match=every_should(terms)),
                    viewer=viewer,
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
