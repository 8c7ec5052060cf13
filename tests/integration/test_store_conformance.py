"""Every storage backend behaves the same through the PatternStore API.

The same tests run on the embedded store, on Redis standalone and on Redis
Cluster ("One query language, one meaning", on every backend).
Here: writes, reads and search. The rest of the conformance suite, on the
same backends (tests/support/store_backends.py): context entries
(test_store_context.py), SENSITIVE patterns (test_store_sensitive.py),
retention (test_store_retention.py), and what only a shared store has,
several replicas and a cache that can go missing (test_store_replicas.py).
Encryption at rest (raw bytes, key rotation) has its own module,
test_encryption_at_rest.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from attune.memory.v1 import memory_pb2
from memory_service.search.index import PageQuery, ReadQuery
from memory_service.search.query import parse_query
from memory_service.store.base import PatternConflictError, PatternStore
from tests.support.store_backends import (  # The backends, and their fixtures.
    NS,
    VIEWER,
    Backend,
    backend,
    corpus,
    loaded,
    page_ids,
    run_pattern,
    search_ids,
    store,
    where,
)

__all__ = ["backend", "loaded", "store"]  # Fixtures: imported for pytest.


# --- writes -------------------------------------------------------------------------


async def test_put_dedupes_conflicts_and_replaces(store: PatternStore) -> None:
    first = corpus()[0]
    stored = await store.put(NS, first, False)
    assert (stored.deduped, stored.replaced) == (False, False)
    assert stored.pattern.namespace == NS

    again = await store.put(NS, first, False)
    assert (again.deduped, again.replaced) == (True, False)
    assert again.pattern == stored.pattern  # The stored one, store time included.

    changed = memory_pb2.Pattern()
    changed.CopyFrom(first)
    changed.content = "a different body under the same id"
    with pytest.raises(PatternConflictError):
        await store.put(NS, changed, False)
    got = await store.get(NS, first.id, viewer=VIEWER)
    assert got is not None
    assert got.content == first.content

    replaced = await store.put(NS, changed, True)
    assert (replaced.deduped, replaced.replaced) == (False, True)
    got = await store.get(NS, first.id, viewer=VIEWER)
    assert got is not None
    assert got.content == changed.content
    assert (await search_ids(store, "different body"))[0] == [first.id]
    assert (await search_ids(store, "testpypi"))[0] == []

    # Output-only fields a writer sends do not make a write different.
    echoed = memory_pb2.Pattern()
    echoed.CopyFrom(got)
    assert (await store.put(NS, echoed, False)).deduped


async def test_get_returns_the_stamped_pattern(store: PatternStore) -> None:
    before = datetime.now(UTC)
    undated = memory_pb2.Pattern(id="note", type=memory_pb2.PATTERN_TYPE_INSIGHT, content="x")
    await store.put(NS, undated, False)
    dated = corpus()[0]
    await store.put(NS, dated, False)

    got = await store.get(NS, "note", viewer=VIEWER)
    assert got is not None
    assert got.namespace == NS
    assert got.store_time.ToDatetime(UTC) >= before - timedelta(seconds=1)
    assert got.create_time == got.store_time  # Defaults to the time of the store.
    got_dated = await store.get(NS, dated.id, viewer=VIEWER)
    assert got_dated is not None
    assert got_dated.create_time == dated.create_time
    assert got_dated.agents == dated.agents
    assert got_dated.form_responses == dated.form_responses
    assert await store.get(NS, "missing", viewer=VIEWER) is None
    assert await store.get("other", "note", viewer=VIEWER) is None


async def test_delete_removes_the_pattern_from_every_read(loaded: PatternStore) -> None:
    assert await loaded.delete(NS, "run-1", viewer=VIEWER)
    assert not await loaded.delete(NS, "run-1", viewer=VIEWER)
    assert not await loaded.delete(NS, "never-stored", viewer=VIEWER)
    assert await loaded.get(NS, "run-1", viewer=VIEWER) is None
    assert (await search_ids(loaded, "coverage gate"))[0] == []
    assert "run-1" not in await page_ids(loaded)
    total, groups = await loaded.count(NS, where('agents.tier = "premium"'), "", viewer=VIEWER)
    assert total == 1  # run-3 only now.
    assert sum(group.count for group in groups) == 1
    # Deleted, the id is free again: the same body stores anew, not deduped.
    again = await loaded.put(NS, corpus()[0], False)
    assert not again.deduped
    assert "run-1" in await page_ids(loaded)


# --- search ---------------------------------------------------------------------------


async def test_search_with_terms_and_filters(loaded: PatternStore) -> None:
    assert await search_ids(loaded, "documentation") == (["run-3"], 1)
    assert await search_ids(loaded, '"coverage gate"') == (["run-1"], 1)
    ids, total = await search_ids(loaded, "package")
    assert sorted(ids) == ["run-1", "run-2", "run-4"]
    assert total == 3
    assert await search_ids(loaded, "package", 'agents.tier = "premium"') == (["run-1"], 1)
    ids, total = await search_ids(loaded, "package", "form_responses.test_coverage_required >= 80")
    assert sorted(ids) == ["run-1", "run-4"]
    assert total == 2
    # Without terms the filter alone selects, newest first.
    assert await search_ids(loaded, "", 'agents.tier = "premium"') == (["run-3", "run-1"], 2)
    assert await search_ids(loaded, "", "form_responses.test_coverage_required >= 80") == (
        ["run-4", "run-1"],
        2,
    )
    assert await search_ids(
        loaded, "", "type = EXECUTION AND success = false AND total_cost_usd < 1"
    ) == (
        ["run-2"],
        1,
    )
    assert await search_ids(loaded, "", 'tags: "release" AND NOT agents.tier = "premium"') == (
        ["run-4"],
        1,
    )
    ids, _ = await search_ids(loaded, "publ*")
    assert sorted(ids) == ["run-1", "run-2", "run-4"]


async def test_search_explains_fuzzy_matches_and_pages(loaded: PatternStore) -> None:
    hits, total = await loaded.search(
        ReadQuery(NS, parse_query("documentaton"), None, 10, explain=True), viewer=VIEWER
    )
    assert [hit.pattern.id for hit in hits] == ["run-3"]
    assert total == 1
    assert hits[0].fuzzy_expansions == ("documentaton->documentation",)
    assert hits[0].matched_terms == ("documentation",)
    first, total = await loaded.search(
        ReadQuery(NS, parse_query("package"), None, 2, 0), viewer=VIEWER
    )
    rest, _ = await loaded.search(ReadQuery(NS, parse_query("package"), None, 2, 2), viewer=VIEWER)
    assert total == 3
    assert len(first) == 2
    assert len(rest) == 1
    assert {hit.pattern.id for hit in first + rest} == {"run-1", "run-2", "run-4"}
    assert [hit.score for hit in first] == sorted((hit.score for hit in first), reverse=True)


async def test_page_orders_and_counts_totals(loaded: PatternStore) -> None:
    newest, total = await loaded.page(
        PageQuery(NS, None, [("create_time", True)], 2, 0), viewer=VIEWER
    )
    assert [p.id for p in newest] == ["run-4", "run-3"]
    assert total == 5
    middle, total = await loaded.page(
        PageQuery(NS, None, [("create_time", True)], 2, 2), viewer=VIEWER
    )
    last, _ = await loaded.page(PageQuery(NS, None, [("create_time", True)], 2, 4), viewer=VIEWER)
    assert [p.id for p in middle] == ["run-2", "run-1"]
    assert [p.id for p in last] == ["insight-1"]
    assert total == 5
    by_id, _ = await loaded.page(PageQuery(NS, None, [("id", True)], 10, 0), viewer=VIEWER)
    assert [p.id for p in by_id] == ["run-4", "run-3", "run-2", "run-1", "insight-1"]
    filtered, total = await loaded.page(
        PageQuery(NS, where('template_id = "python_package_publish"'), [], 1, 1), viewer=VIEWER
    )
    assert total == 3
    assert [p.id for p in filtered] == ["run-2"]


async def test_count_groups_by_scalars_and_agent_fields(loaded: PatternStore) -> None:
    total, groups = await loaded.count(NS, None, "template_id", viewer=VIEWER)
    assert total == 5
    assert [(g.key, g.count, g.success_count) for g in groups] == [
        ("python_package_publish", 3, 2),
        ("", 1, 0),
        ("docs_site_build", 1, 1),
    ]
    # A pattern counts once under each tier its agents used.
    total, groups = await loaded.count(NS, where("type = EXECUTION"), "agents.tier", viewer=VIEWER)
    assert total == 4
    assert {g.key: g.count for g in groups} == {"CHEAP": 3, "PREMIUM": 2, "CAPABLE": 1}
    total, groups = await loaded.count(NS, where("success = true"), "", viewer=VIEWER)
    assert total == 3
    assert groups[0].count == 3
    assert groups[0].total_cost_usd == pytest.approx(1.875)
    assert await loaded.count(NS, where('template_id = "none"'), "tags", viewer=VIEWER) == (0, [])


async def test_query_vocabulary_lists_templates_and_numeric_questions(
    loaded: PatternStore,
) -> None:
    assert await loaded.query_vocabulary(NS, viewer=VIEWER) == (
        ["docs_site_build", "python_package_publish"],
        ["page_count", "test_coverage_required"],
    )
    assert await loaded.query_vocabulary("empty", viewer=VIEWER) == ([], [])


async def test_namespaces_are_isolated(loaded: PatternStore) -> None:
    other = run_pattern("run-1", "A different team's run of the demo package", hours=9)
    assert not (await loaded.put("team-b", other, False)).deduped  # Same id, no conflict.
    a = await loaded.get(NS, "run-1", viewer=VIEWER)
    b = await loaded.get("team-b", "run-1", viewer=VIEWER)
    assert a is not None
    assert b is not None
    assert a.content != b.content
    assert await search_ids(loaded, "team", namespace="team-b") == (["run-1"], 1)
    assert await search_ids(loaded, "team") == ([], 0)
    assert await page_ids(loaded, namespace="team-b") == ["run-1"]
    assert (await loaded.count("team-b", None, "", viewer=VIEWER))[0] == 1
    assert await loaded.delete("team-b", "run-1", viewer=VIEWER)
    assert await loaded.get(NS, "run-1", viewer=VIEWER) is not None


async def test_a_reopened_store_keeps_everything(backend: Backend, loaded: PatternStore) -> None:
    assert await loaded.delete(NS, "run-2", viewer=VIEWER)
    before = (await page_ids(loaded), await loaded.count(NS, None, "agents.tier", viewer=VIEWER))
    await backend.close(loaded)
    reopened = await backend.open()
    assert await reopened.ping()
    assert (
        await page_ids(reopened),
        await reopened.count(NS, None, "agents.tier", viewer=VIEWER),
    ) == before
    assert await search_ids(reopened, "package", 'agents.tier = "premium"') == (["run-1"], 1)
    assert (await reopened.put(NS, corpus()[0], False)).deduped
    assert await reopened.get(NS, "run-2", viewer=VIEWER) is None


async def test_group_sums_count_each_pattern_once(loaded: PatternStore) -> None:
    _, groups = await loaded.count(NS, None, "agents.tier", viewer=VIEWER)
    premium = next(g for g in groups if g.key == "PREMIUM")
    assert premium.count == 2
    assert premium.success_count == 2
    assert premium.total_cost_usd == pytest.approx(0.5 + 1.25)
