"""Every storage backend behaves the same through the PatternStore API.

The same tests run on the embedded store, on Redis standalone and on Redis
Cluster (invariant 3: one query language, one meaning, on every backend).
The Redis-only tests at the end cover what only a shared store has: several
replicas, and a cache that can go missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio import RedisCluster as RedisClusterClient
from redis.asyncio.cluster import ClusterNode

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from executor_service.forms import to_form_value
from memory_service.search.filter import Node, compile_filter
from memory_service.search.query import parse_query
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.store import redis_store
from memory_service.store.base import PatternConflictError, PatternStore
from memory_service.store.embedded import EmbeddedStore
from memory_service.store.redis_store import CACHE_FILE, RedisOptions, RedisStore
from tests.helpers import eventually
from tests.redis_servers import RedisCluster, RedisServer

NS = "team-a"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TIERS = {
    "cheap": common_pb2.TIER_CHEAP,
    "capable": common_pb2.TIER_CAPABLE,
    "premium": common_pb2.TIER_PREMIUM,
}


def run_pattern(
    pattern_id: str,
    content: str,
    *,
    template_id: str = "python_package_publish",
    agents: tuple[tuple[str, str, bool], ...] = (),
    answers: dict[str, str | float | bool | list[str]] | None = None,
    success: bool = True,
    cost: float = 0.0,
    tags: tuple[str, ...] = (),
    hours: int = 0,
) -> memory_pb2.Pattern:
    """An execution pattern as the executor writes one."""
    pattern = memory_pb2.Pattern(
        id=pattern_id,
        type=memory_pb2.PATTERN_TYPE_EXECUTION,
        template_id=template_id,
        success=success,
        total_cost_usd=cost,
        content=content,
        tags=list(tags),
        run_id=pattern_id,
        runner="simulated",
        agents=[
            memory_pb2.PatternAgent(
                role=role,
                tier=TIERS[tier],
                success=ok,
                cost_usd=cost / max(len(agents), 1),
                attempt_count=1,
            )
            for role, tier, ok in agents
        ],
        form_responses={key: to_form_value(value) for key, value in (answers or {}).items()},
    )
    for _, tier, _ in agents:
        pattern.tier_distribution[tier] += 1
    pattern.create_time.FromDatetime(T0 + timedelta(hours=hours))
    pattern.total_duration.FromSeconds(30 + hours)
    return pattern


def corpus() -> list[memory_pb2.Pattern]:
    """Five patterns: four runs of two templates and one insight."""
    insight = memory_pb2.Pattern(
        id="insight-1",
        type=memory_pb2.PATTERN_TYPE_INSIGHT,
        content="Prefer the premium tier for flaky integration suites",
        tags=["insight"],
    )
    insight.create_time.FromDatetime(T0)
    return [
        run_pattern(
            "run-1",
            "Published the demo package to testpypi behind a coverage gate",
            agents=(("test_runner", "premium", True), ("linter", "cheap", True)),
            answers={"package_name": "demo", "test_coverage_required": 90.0, "has_tests": True},
            cost=0.5,
            tags=("python", "release"),
            hours=1,
        ),
        run_pattern(
            "run-2",
            "Publishing failed: measured coverage stayed below the threshold",
            agents=(("test_runner", "capable", False), ("linter", "cheap", True)),
            answers={"package_name": "tool", "test_coverage_required": 70.0},
            success=False,
            cost=0.25,
            tags=("python",),
            hours=2,
        ),
        run_pattern(
            "run-3",
            "Built the documentation site with a link checker",
            template_id="docs_site_build",
            agents=(("writer", "premium", True), ("reviewer", "premium", True)),
            answers={"site_name": "handbook", "page_count": 12.0},
            cost=1.25,
            tags=("docs",),
            hours=3,
        ),
        run_pattern(
            "run-4",
            "Published the cli package after one retry",
            agents=(("test_runner", "cheap", True),),
            answers={"package_name": "cli", "test_coverage_required": 80.0},
            cost=0.125,
            tags=("python", "release"),
            hours=4,
        ),
        insight,
    ]


def where(text: str) -> Node | None:
    return compile_filter(text, PATTERN_SCHEMA)


async def search_ids(
    store: PatternStore, query: str = "", condition: str = "", namespace: str = NS
) -> tuple[list[str], int]:
    terms = parse_query(query) if query else []
    hits, total = await store.search(namespace, terms, where(condition), 10, 0, None, False)
    return [hit.pattern.id for hit in hits], total


async def page_ids(store: PatternStore, condition: str = "", namespace: str = NS) -> list[str]:
    patterns, _ = await store.page(namespace, where(condition), [("id", False)], 100, 0)
    return [pattern.id for pattern in patterns]


@dataclass
class Backend:
    """Opens stores of one backend kind; closes every one it opened."""

    name: str
    root: Path
    redis: RedisOptions | None = None
    opened: list[PatternStore] = field(default_factory=list)

    async def open(self, replica: str = "a") -> PatternStore:
        """A store on the backend's data (for Redis: a replica with its own cache)."""
        store: EmbeddedStore | RedisStore
        if self.redis is None:
            store = EmbeddedStore(self.root / "embedded")
        else:
            store = RedisStore(self.root / f"replica-{replica}", self.redis)
        await store.open()
        self.opened.append(store)
        return store

    async def close(self, store: PatternStore) -> None:
        self.opened.remove(store)
        await store.close()

    def raw_client(self) -> Redis | RedisClusterClient:
        """A plain redis-py client on the backend's Redis."""
        assert self.redis is not None
        if self.redis.cluster_nodes:
            seeds = [ClusterNode(*node.split(":")) for node in self.redis.cluster_nodes]
            return RedisClusterClient(startup_nodes=seeds)
        return Redis.from_url(self.redis.url)


@pytest.fixture(params=["embedded", "redis", "redis-cluster"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str
) -> AsyncIterator[Backend]:
    options = None
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        options = RedisOptions(url=server.url, key_prefix=key_prefix)
    elif request.param == "redis-cluster":
        running: RedisCluster = request.getfixturevalue("redis_cluster")
        options = RedisOptions(cluster_nodes=tuple(running.nodes), key_prefix=key_prefix)
    kind = Backend(request.param, tmp_path, options)
    try:
        yield kind
    finally:
        for store in list(kind.opened):
            await kind.close(store)


@pytest.fixture
async def store(backend: Backend) -> PatternStore:
    return await backend.open()


@pytest.fixture
async def loaded(store: PatternStore) -> PatternStore:
    """A store holding the corpus in NS."""
    for pattern in corpus():
        outcome = await store.put(NS, pattern, False)
        assert not outcome.deduped
    return store


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
    got = await store.get(NS, first.id)
    assert got is not None
    assert got.content == first.content

    replaced = await store.put(NS, changed, True)
    assert (replaced.deduped, replaced.replaced) == (False, True)
    got = await store.get(NS, first.id)
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

    got = await store.get(NS, "note")
    assert got is not None
    assert got.namespace == NS
    assert got.store_time.ToDatetime(UTC) >= before - timedelta(seconds=1)
    assert got.create_time == got.store_time  # Defaults to the time of the store.
    got_dated = await store.get(NS, dated.id)
    assert got_dated is not None
    assert got_dated.create_time == dated.create_time
    assert got_dated.agents == dated.agents
    assert got_dated.form_responses == dated.form_responses
    assert await store.get(NS, "missing") is None
    assert await store.get("other", "note") is None


async def test_delete_removes_the_pattern_from_every_read(loaded: PatternStore) -> None:
    assert await loaded.delete(NS, "run-1")
    assert not await loaded.delete(NS, "run-1")
    assert not await loaded.delete(NS, "never-stored")
    assert await loaded.get(NS, "run-1") is None
    assert (await search_ids(loaded, "coverage gate"))[0] == []
    assert "run-1" not in await page_ids(loaded)
    total, groups = await loaded.count(NS, where('agents.tier = "premium"'), "")
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
        NS, parse_query("documentaton"), None, 10, 0, None, explain=True
    )
    assert [hit.pattern.id for hit in hits] == ["run-3"]
    assert total == 1
    assert hits[0].fuzzy_expansions == ("documentaton->documentation",)
    assert hits[0].matched_terms == ("documentation",)
    first, total = await loaded.search(NS, parse_query("package"), None, 2, 0, None, False)
    rest, _ = await loaded.search(NS, parse_query("package"), None, 2, 2, None, False)
    assert total == 3
    assert len(first) == 2
    assert len(rest) == 1
    assert {hit.pattern.id for hit in first + rest} == {"run-1", "run-2", "run-4"}
    assert [hit.score for hit in first] == sorted((hit.score for hit in first), reverse=True)


async def test_page_orders_and_counts_totals(loaded: PatternStore) -> None:
    newest, total = await loaded.page(NS, None, [("create_time", True)], 2, 0)
    assert [p.id for p in newest] == ["run-4", "run-3"]
    assert total == 5
    middle, total = await loaded.page(NS, None, [("create_time", True)], 2, 2)
    last, _ = await loaded.page(NS, None, [("create_time", True)], 2, 4)
    assert [p.id for p in middle] == ["run-2", "run-1"]
    assert [p.id for p in last] == ["insight-1"]
    assert total == 5
    by_id, _ = await loaded.page(NS, None, [("id", True)], 10, 0)
    assert [p.id for p in by_id] == ["run-4", "run-3", "run-2", "run-1", "insight-1"]
    filtered, total = await loaded.page(
        NS, where('template_id = "python_package_publish"'), [], 1, 1
    )
    assert total == 3
    assert [p.id for p in filtered] == ["run-2"]


async def test_count_groups_by_scalars_and_agent_fields(loaded: PatternStore) -> None:
    total, groups = await loaded.count(NS, None, "template_id")
    assert total == 5
    assert [(g.key, g.count, g.success_count) for g in groups] == [
        ("python_package_publish", 3, 2),
        ("", 1, 0),
        ("docs_site_build", 1, 1),
    ]
    # A pattern counts once under each tier its agents used.
    total, groups = await loaded.count(NS, where("type = EXECUTION"), "agents.tier")
    assert total == 4
    assert {g.key: g.count for g in groups} == {"CHEAP": 3, "PREMIUM": 2, "CAPABLE": 1}
    total, groups = await loaded.count(NS, where("success = true"), "")
    assert total == 3
    assert groups[0].count == 3
    assert groups[0].total_cost_usd == pytest.approx(1.875)
    assert await loaded.count(NS, where('template_id = "none"'), "tags") == (0, [])


async def test_query_vocabulary_lists_templates_and_numeric_questions(
    loaded: PatternStore,
) -> None:
    assert await loaded.query_vocabulary(NS) == (
        ["docs_site_build", "python_package_publish"],
        ["page_count", "test_coverage_required"],
    )
    assert await loaded.query_vocabulary("empty") == ([], [])


async def test_namespaces_are_isolated(loaded: PatternStore) -> None:
    other = run_pattern("run-1", "A different team's run of the demo package", hours=9)
    assert not (await loaded.put("team-b", other, False)).deduped  # Same id, no conflict.
    a = await loaded.get(NS, "run-1")
    b = await loaded.get("team-b", "run-1")
    assert a is not None
    assert b is not None
    assert a.content != b.content
    assert await search_ids(loaded, "team", namespace="team-b") == (["run-1"], 1)
    assert await search_ids(loaded, "team") == ([], 0)
    assert await page_ids(loaded, namespace="team-b") == ["run-1"]
    assert (await loaded.count("team-b", None, ""))[0] == 1
    assert await loaded.delete("team-b", "run-1")
    assert await loaded.get(NS, "run-1") is not None


async def test_a_reopened_store_keeps_everything(backend: Backend, loaded: PatternStore) -> None:
    assert await loaded.delete(NS, "run-2")
    before = (await page_ids(loaded), await loaded.count(NS, None, "agents.tier"))
    await backend.close(loaded)
    reopened = await backend.open()
    assert await reopened.ping()
    assert (await page_ids(reopened), await reopened.count(NS, None, "agents.tier")) == before
    assert await search_ids(reopened, "package", 'agents.tier = "premium"') == (["run-1"], 1)
    assert (await reopened.put(NS, corpus()[0], False)).deduped
    assert await reopened.get(NS, "run-2") is None


async def test_group_sums_count_each_pattern_once(loaded: PatternStore) -> None:
    _, groups = await loaded.count(NS, None, "agents.tier")
    premium = next(g for g in groups if g.key == "PREMIUM")
    assert premium.count == 2
    assert premium.success_count == 2
    assert premium.total_cost_usd == pytest.approx(0.5 + 1.25)


# --- Redis only: replicas and the cache ----------------------------------------------


@pytest.fixture
def redis_backend(backend: Backend) -> Backend:
    if backend.redis is None:
        pytest.skip("replicas and caches are a Redis backend matter")
    return backend


async def test_every_replica_reads_what_any_replica_acknowledged(redis_backend: Backend) -> None:
    a = await redis_backend.open("a")
    b = await redis_backend.open("b")
    patterns = corpus()

    async def write(store: PatternStore, pattern: memory_pb2.Pattern) -> None:
        await store.put(NS, pattern, False)
        # Acknowledged: the other replica's next read sees it.
        other = b if store is a else a
        assert pattern.id in await page_ids(other)
        ids, _ = await search_ids(other, "", f'id = "{pattern.id}"')
        assert ids == [pattern.id]

    await asyncio.gather(*(write(a if i % 2 else b, p) for i, p in enumerate(patterns)))
    assert await page_ids(a) == await page_ids(b) == sorted(p.id for p in patterns)
    assert await a.count(NS, None, "agents.tier") == await b.count(NS, None, "agents.tier")
    assert await b.delete(NS, "run-3")
    assert "run-3" not in await page_ids(a)
    assert await search_ids(a, "documentation") == ([], 0)
    changed = memory_pb2.Pattern()
    changed.CopyFrom(patterns[0])
    changed.content = "rewritten on replica b"
    await b.put(NS, changed, True)
    assert await search_ids(a, "rewritten") == (["run-1"], 1)


def entries_applied(caplog: pytest.LogCaptureFixture) -> list[int]:
    """What each startup load replayed, from the store's log lines."""
    return [
        int(getattr(record, "entries_applied", -1))
        for record in caplog.records
        if record.getMessage() == "search cache loaded from Redis"
    ]


async def test_a_restart_replays_only_the_tail_and_a_lost_cache_is_rebuilt(
    redis_backend: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Tiny batches, so replays cross many batch boundaries.
    monkeypatch.setattr(redis_store, "LOG_BATCH", 3)
    monkeypatch.setattr(redis_store, "FETCH_BATCH", 2)
    caplog.set_level(logging.INFO, logger="attune.memory.redis")
    store = await redis_backend.open("a")
    for pattern in corpus():
        await store.put(NS, pattern, False)
    replaced = memory_pb2.Pattern()
    replaced.CopyFrom(corpus()[1])
    replaced.content = "replaced while the replica was away"
    expected = await page_ids(store)
    await redis_backend.close(store)

    writer = await redis_backend.open("writer")
    await writer.put(NS, replaced, True)
    await writer.delete(NS, "run-3")
    await writer.put("team-b", corpus()[0], False)
    expected.remove("run-3")
    caplog.clear()
    restarted = await redis_backend.open("a")
    assert entries_applied(caplog) == [3]  # The two entries of NS and one of team-b.
    assert await page_ids(restarted) == expected
    assert await search_ids(restarted, "replaced") == (["run-2"], 1)
    assert await page_ids(restarted, namespace="team-b") == ["run-1"]
    await redis_backend.close(restarted)

    cache = redis_backend.root / "replica-a" / CACHE_FILE
    cache.write_bytes(b"not a database" * 100)
    caplog.clear()
    rebuilt = await redis_backend.open("a")
    assert entries_applied(caplog) == [5 + 3]
    assert await page_ids(rebuilt) == expected
    assert await search_ids(rebuilt, "documentation") == ([], 0)
    assert await search_ids(rebuilt, "replaced") == (["run-2"], 1)
    await redis_backend.close(rebuilt)

    for suffix in ("", "-wal", "-shm"):
        Path(f"{cache}{suffix}").unlink(missing_ok=True)
    fresh = await redis_backend.open("a")
    assert await page_ids(fresh) == expected
    assert await fresh.count(NS, None, "") == await writer.count(NS, None, "")


async def test_a_namespace_redis_lost_is_dropped_from_every_cache(redis_backend: Backend) -> None:
    a = await redis_backend.open("a")
    b = await redis_backend.open("b")
    for pattern in corpus():
        await a.put(NS, pattern, False)
    await a.put("team-b", corpus()[0], False)
    assert len(await page_ids(b)) == 5  # b's cache holds the namespace.

    # What a Redis (or a cluster node) that restarts without persistence does.
    assert redis_backend.redis is not None
    tag = f"{redis_backend.redis.key_prefix}:{{{NS}}}"
    lost = [f"{tag}:pattern:{p.id}" for p in corpus()] + [f"{tag}:log", f"{tag}:epoch"]
    raw = redis_backend.raw_client()
    try:
        assert await raw.delete(*lost) == len(lost)
    finally:
        await raw.aclose()

    assert await page_ids(b) == []
    assert await search_ids(b, "package") == ([], 0)
    assert await b.count(NS, None, "") == (0, [])
    assert await b.get(NS, "run-1") is None
    assert await page_ids(b, namespace="team-b") == ["run-1"]  # Other namespaces keep theirs.
    assert not (await a.put(NS, corpus()[3], False)).deduped
    assert await page_ids(b) == ["run-4"]
    assert await page_ids(a) == ["run-4"]


async def test_context_entries_set_read_replace_and_delete(store: PatternStore) -> None:
    first = await store.set_context(NS, "s1", "answers", '{"a": 1}', 60)
    assert first.expire_us - first.update_us == 60_000_000
    await store.set_context(NS, "s1", "answers", '{"a": 2}', 60)
    await store.set_context(NS, "s1", "choices", "x", 60)
    await store.set_context(NS, "s2", "answers", "other session", 60)
    await store.set_context("other-ns", "s1", "answers", "other namespace", 60)
    entries = await store.get_context(NS, "s1", "")
    assert [(e.key, e.value) for e in entries] == [("answers", '{"a": 2}'), ("choices", "x")]
    assert [e.value for e in await store.get_context(NS, "s1", "choices")] == ["x"]
    assert await store.get_context(NS, "s1", "missing") == []
    assert await store.delete_context(NS, "s1", "choices") == 1
    assert await store.delete_context(NS, "s1", "choices") == 0
    assert await store.delete_context(NS, "s1", "") == 1
    assert await store.get_context(NS, "s1", "") == []
    assert [e.value for e in await store.get_context(NS, "s2", "")] == ["other session"]
    assert [e.value for e in await store.get_context("other-ns", "s1", "")] == ["other namespace"]


async def test_context_entries_expire(store: PatternStore) -> None:
    await store.set_context(NS, "short", "gone", "soon", 0.05)
    await store.set_context(NS, "short", "kept", "later", 60)

    async def keys() -> list[str]:
        return [entry.key for entry in await store.get_context(NS, "short", "")]

    # Expiry happens on the store's clock; wait (bounded) for it, not a fixed time.
    assert await eventually(keys, lambda found: found == ["kept"], within=10)
    assert await store.delete_context(NS, "short", "gone") == 0
