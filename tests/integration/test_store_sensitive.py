"""SENSITIVE patterns are their owner's alone, on every storage backend.

Part of the store conformance suite (test_store_conformance.py): per-owner
ids, visibility in every read, moving between the halves, query words.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import cast

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from executor_service.runs.forms import to_form_value
from memory_service.search.index import PageQuery
from memory_service.store.base import PatternStore, PutOutcome
from tests.support.store_backends import (  # The backends, and their fixtures.
    NS,
    VIEWER,
    Backend,
    backend,
    corpus,
    loaded,
    page_ids,
    redis_backend,
    run_pattern,
    search_ids,
    sensitive,
    store,
    where,
)

__all__ = ["backend", "loaded", "redis_backend", "store"]  # Fixtures: imported for pytest.


async def test_sensitive_ids_are_per_owner_so_a_write_confirms_nothing(store: PatternStore) -> None:
    """Finding 11: another user's SENSITIVE id answers as a fresh id does, and
    is never overwritten, deduped or deleted by anyone else."""
    mine = sensitive("ledger", "the quarterly ledger of alice")
    assert not (await store.put(NS, mine, False)).deduped

    def as_(owner: str, source: memory_pb2.Pattern, **changes: object) -> memory_pb2.Pattern:
        made = memory_pb2.Pattern()
        made.CopyFrom(source)
        made.owner = owner
        for name, value in changes.items():
            setattr(made, name, value)
        return made

    def answer(outcome: PutOutcome) -> tuple[bool, bool]:
        return outcome.deduped, outcome.replaced

    # Bob's writes under alice's id answer exactly as under an unused id.
    for body in (mine, as_("bob", mine, content="bob's own ledger")):
        for pattern_id in ("ledger", f"fresh-{len(body.content)}"):
            theirs = as_("bob", body, id=pattern_id)
            assert answer(await store.put(NS, theirs, False)) == (False, False)
            assert answer(await store.put(NS, theirs, False)) == (True, False)  # A replay.
            await store.delete(NS, pattern_id, viewer="bob")
    bobs = as_("bob", mine, content="bob's own ledger")
    assert answer(await store.put(NS, bobs, True)) == (False, False)
    got = await store.get(NS, "ledger", viewer="bob")
    assert got is not None
    assert (got.owner, got.content) == ("bob", "bob's own ledger")

    # Carol's shared pattern under the id: a fresh id for her too.
    shared = run_pattern("ledger", "carol's shared ledger notes")
    shared.owner = "carol"
    assert answer(await store.put(NS, shared, False)) == (False, False)
    assert answer(await store.put(NS, as_("carol", shared, content="v2"), True)) == (False, True)

    # Nobody else touched alice's pattern; she reads hers by id, both in lists.
    got = await store.get(NS, "ledger", viewer=VIEWER)
    assert got is not None
    assert (got.owner, got.content) == (VIEWER, mine.content)
    assert await page_ids(store) == ["ledger", "ledger"]
    assert await page_ids(store, viewer="carol") == ["ledger"]
    assert answer(await store.put(NS, mine, False)) == (True, False)  # Her replay still dedupes.

    # A delete takes what its caller reads: never another owner's version.
    assert await store.delete(NS, "ledger", viewer="dave")  # The shared one.
    assert not await store.delete(NS, "ledger", viewer="dave")
    for owner, content in ((VIEWER, mine.content), ("bob", "bob's own ledger")):
        got = await store.get(NS, "ledger", viewer=owner)
        assert got is not None
        assert got.content == content

    # Alice replacing her id with a shared pattern replaces only her own.
    public = as_(VIEWER, mine, classification=common_pb2.CLASSIFICATION_INTERNAL)
    assert answer(await store.put(NS, public, True)) == (False, True)
    assert await page_ids(store) == ["ledger"]
    assert await page_ids(store, viewer="bob") == ["ledger", "ledger"]
    await store.purge_expired()  # Nothing expired: nothing goes.
    assert await page_ids(store, viewer="bob") == ["ledger", "ledger"]

    # Not SENSITIVE: the ordinary rules, whoever wrote it.
    shared = run_pattern("shared", "an internal note")
    shared.owner = VIEWER
    await store.put(NS, shared, False)
    by_bob = memory_pb2.Pattern()
    by_bob.CopyFrom(shared)
    by_bob.owner = "bob"
    assert (await store.put(NS, by_bob, False)).deduped


async def test_a_sensitive_pattern_in_the_layout_before_per_owner_ids_is_kept(
    redis_backend: Backend,
) -> None:
    """Before per-owner ids, Redis kept a SENSITIVE pattern in the shared
    `pattern:<id>` hash, its owner as `owner_guard`. Still read there, and
    moved to its own key when someone else writes a shared pattern under the id."""
    a = await redis_backend.open("a")
    mine = sensitive("ledger", "the ledger of alice, old layout")
    await a.put(NS, mine, False)
    assert redis_backend.redis is not None
    tag = f"{redis_backend.redis.key_prefix}:{{{NS}}}"
    own_key = f"{tag}:sealed:{len(VIEWER)}:{VIEWER}:ledger"
    raw = redis_backend.raw_client()
    try:
        await raw.rename(own_key, f"{tag}:pattern:ledger")  # Where the older version kept it.
        await cast(Awaitable[int], raw.srem(f"{tag}:owners:ledger", VIEWER))
        await raw.xadd(f"{tag}:log", {"op": "put", "id": "ledger", "fingerprint": "x"})
        b = await redis_backend.open("b")  # A replica that loads the old layout.
        for store in (a, b):
            got = await store.get(NS, "ledger", viewer=VIEWER)
            assert got is not None
            assert got.content == mine.content
            assert await store.get(NS, "ledger", viewer="bob") is None
            assert await search_ids(store, "layout") == (["ledger"], 1)
            assert await search_ids(store, "layout", viewer="bob") == ([], 0)
        assert (await a.put(NS, mine, False)).deduped  # Alice's replay.

        shared = run_pattern("ledger", "bob's shared notes")
        shared.owner = "bob"
        outcome = await b.put(NS, shared, False)
        assert (outcome.deduped, outcome.replaced) == (False, False)  # As for a fresh id.
        moved = await cast(Awaitable[bytes | None], raw.hget(own_key, "owner_guard"))
        assert moved == VIEWER.encode()  # Moved to its own key, not lost.
        for store in (a, b):
            got = await store.get(NS, "ledger", viewer=VIEWER)
            assert got is not None
            assert got.content == mine.content
            got = await store.get(NS, "ledger", viewer="bob")
            assert got is not None
            assert got.content == "bob's shared notes"
            assert await page_ids(store) == ["ledger", "ledger"]
    finally:
        await raw.aclose()


async def test_sensitive_patterns_are_visible_only_to_their_owner(loaded: PatternStore) -> None:
    secret = sensitive("secret-1", "zebrafinch payroll package export", hours=3)
    secret.embedding = b"\x00\x00\x80?" * 4
    await loaded.put(NS, secret, False)
    bobs = sensitive("secret-2", "zebrafinch notes of bob", owner="bob", hours=5)
    await loaded.put(NS, bobs, False)

    # Bob: alice's pattern is absent from every read (and his own is there).
    assert await loaded.get(NS, "secret-1", viewer="bob") is None
    assert await search_ids(loaded, "zebrafinch", viewer="bob") == (["secret-2"], 1)
    assert "secret-1" not in await page_ids(loaded, viewer="bob")
    assert (await loaded.count(NS, None, "", viewer="bob"))[0] == 6
    assert await loaded.get_many(NS, ["secret-1", "run-1"], viewer="bob") == {
        "run-1": await loaded.get(NS, "run-1", viewer="bob")
    }
    assert await loaded.vectors(NS, None, viewer="bob") == []
    assert not await loaded.delete(NS, "secret-1", viewer="bob")
    # A stranger sees only what is not SENSITIVE.
    assert await search_ids(loaded, "zebrafinch", viewer="carol") == ([], 0)
    assert await page_ids(loaded, viewer="carol") == sorted(p.id for p in corpus())

    # Alice: merged into every read, in order.
    got = await loaded.get(NS, "secret-1", viewer=VIEWER)
    assert got is not None
    assert got.content == secret.content
    assert await search_ids(loaded, "zebrafinch") == (["secret-1"], 1)
    ids, total = await search_ids(loaded, "package")
    assert sorted(ids) == ["run-1", "run-2", "run-4", "secret-1"]
    assert total == 4
    newest, total = await loaded.page(
        PageQuery(NS, None, [("create_time", True)], 3, 0), viewer=VIEWER
    )
    # secret-1 and run-3 were created at the same time: the id breaks the tie.
    assert [p.id for p in newest] == ["run-4", "run-3", "secret-1"]
    assert total == 6
    rest, _ = await loaded.page(PageQuery(NS, None, [("create_time", True)], 3, 3), viewer=VIEWER)
    assert [p.id for p in rest] == ["run-2", "run-1", "insight-1"]
    total, groups = await loaded.count(NS, None, "template_id", viewer=VIEWER)
    assert total == 6
    assert [(g.key, g.count, g.success_count) for g in groups] == [
        ("python_package_publish", 4, 3),
        ("", 1, 0),
        ("docs_site_build", 1, 1),
    ]
    _, tiers = await loaded.count(NS, where("type = EXECUTION"), "agents.tier", viewer=VIEWER)
    assert {g.key: g.count for g in tiers} == {"CHEAP": 3, "PREMIUM": 3, "CAPABLE": 1}
    assert set(await loaded.get_many(NS, ["secret-1", "secret-2", "run-1"], viewer=VIEWER)) == {
        "secret-1",
        "run-1",
    }
    assert await loaded.vectors(NS, None, viewer=VIEWER) == [("secret-1", secret.embedding)]
    # Filters apply to the SENSITIVE half too.
    assert await search_ids(loaded, "", "total_cost_usd >= 2") == (["secret-1"], 1)
    # Query words come from what every viewer sees.
    assert await loaded.query_vocabulary(NS, viewer=VIEWER) == (
        ["docs_site_build", "python_package_publish"],
        ["page_count", "test_coverage_required"],
    )

    assert await loaded.delete(NS, "secret-1", viewer=VIEWER)
    assert await loaded.get(NS, "secret-1", viewer=VIEWER) is None
    assert await search_ids(loaded, "zebrafinch") == ([], 0)
    assert await search_ids(loaded, "zebrafinch", viewer="bob") == (["secret-2"], 1)


async def test_a_pattern_moves_between_halves_when_its_classification_changes(
    loaded: PatternStore,
) -> None:
    moved = memory_pb2.Pattern()
    moved.CopyFrom(corpus()[0])  # run-1, not SENSITIVE, no owner
    moved.classification = common_pb2.CLASSIFICATION_SENSITIVE
    moved.owner = VIEWER
    assert (await loaded.put(NS, moved, True)).replaced
    assert await search_ids(loaded, "testpypi", viewer="bob") == ([], 0)
    assert await search_ids(loaded, "testpypi") == (["run-1"], 1)
    assert (await loaded.count(NS, None, "", viewer="bob"))[0] == 4
    assert (await loaded.count(NS, None, "", viewer=VIEWER))[0] == 5

    back = memory_pb2.Pattern()
    back.CopyFrom(moved)
    back.classification = common_pb2.CLASSIFICATION_INTERNAL
    assert (await loaded.put(NS, back, True)).replaced
    assert await search_ids(loaded, "testpypi", viewer="bob") == (["run-1"], 1)
    assert (await loaded.count(NS, None, "", viewer=VIEWER))[0] == 5


async def test_query_words_come_only_from_patterns_the_viewer_may_see(backend: Backend) -> None:
    """Finding 13: query understanding learns nothing from another user's
    SENSITIVE pattern, nor from a deleted or expired one."""
    store = await backend.open()
    await store.put(NS, run_pattern("run-1", "a public run", answers={"coverage": 90.0}), False)
    bobs = sensitive("bob-1", "bob's payroll run", owner="bob")
    bobs.template_id = "payroll_export"
    bobs.form_responses["headcount"].CopyFrom(to_form_value(12.0))
    await store.put(NS, bobs, False)
    shared = (["python_package_publish"], ["coverage"])
    assert await store.query_vocabulary(NS, viewer=VIEWER) == shared
    # The owner's own SENSITIVE words shape the owner's queries.
    assert await store.query_vocabulary(NS, viewer="bob") == (
        ["payroll_export", "python_package_publish"],
        ["coverage", "headcount"],
    )

    # Public, then made SENSITIVE by bob: its words leave everyone else's vocabulary.
    ledger = run_pattern("ledger-1", "the ledger close", template_id="ledger_close")
    ledger.form_responses["ledger_rows"].CopyFrom(to_form_value(3.0))
    await store.put(NS, ledger, False)
    assert await store.query_vocabulary(NS, viewer=VIEWER) == (
        ["ledger_close", "python_package_publish"],
        ["coverage", "ledger_rows"],
    )
    sealed = memory_pb2.Pattern()
    sealed.CopyFrom(ledger)
    sealed.classification = common_pb2.CLASSIFICATION_SENSITIVE
    sealed.owner = "bob"
    assert (await store.put(NS, sealed, True)).replaced
    assert await store.query_vocabulary(NS, viewer=VIEWER) == shared
    assert "ledger_close" in (await store.query_vocabulary(NS, viewer="bob"))[0]

    # Deleting the last pattern naming a word removes it.
    assert await store.delete(NS, "run-1", viewer=VIEWER)
    assert await store.query_vocabulary(NS, viewer=VIEWER) == ([], [])

    # An expired pattern's words go at once, before any purge.
    short = run_pattern("short", "short-lived", template_id="brief_run", answers={"ttl": 1.0})
    short.expire_time.FromMicroseconds(backend.clock.now_us + 60_000_000)
    await store.put(NS, short, False)
    assert await store.query_vocabulary(NS, viewer=VIEWER) == (["brief_run"], ["ttl"])
    backend.clock.advance(61)
    assert await store.query_vocabulary(NS, viewer=VIEWER) == ([], [])
