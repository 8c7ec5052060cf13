"""Every storage backend behaves the same through the PatternStore API.

The same tests run on the embedded store, on Redis standalone and on Redis
Cluster (invariant 3: one query language, one meaning, on every backend).
The Redis-only tests at the end cover what only a shared store has: several
replicas, and a cache that can go missing. Encryption at rest (raw bytes, key
rotation) has its own module, test_encryption_at_rest.py, on these backends.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from redis.asyncio import Redis
from redis.asyncio import RedisCluster as RedisClusterClient
from redis.asyncio.cluster import ClusterNode

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from executor_service.runs.forms import to_form_value
from memory_service.search.filter import Node, compile_filter
from memory_service.search.index import PageQuery, ReadQuery
from memory_service.search.query import parse_query
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.security.crypto import Keyring
from memory_service.store.base import PatternConflictError, PatternStore, PutOutcome
from memory_service.store.context import ContextOwnedError
from memory_service.store.embedded import EmbeddedStore
from memory_service.store.redis import replica as redis_replica
from memory_service.store.redis.link import RedisOptions
from memory_service.store.redis.replica import CACHE_FILE
from memory_service.store.redis.store import RedisStore
from tests.support.helpers import eventually
from tests.support.redis_servers import RedisCluster, RedisServer

NS = "team-a"
# The caller of every read unless a test says otherwise; the corpus has no owner.
VIEWER = "alice"
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
    store: PatternStore,
    query: str = "",
    condition: str = "",
    namespace: str = NS,
    viewer: str = VIEWER,
) -> tuple[list[str], int]:
    terms = parse_query(query) if query else []
    hits, total = await store.search(
        ReadQuery(namespace, terms, where(condition), 10), viewer=viewer
    )
    return [hit.pattern.id for hit in hits], total


async def page_ids(
    store: PatternStore, condition: str = "", namespace: str = NS, viewer: str = VIEWER
) -> list[str]:
    patterns, _ = await store.page(
        PageQuery(namespace, where(condition), [("id", False)], 100, 0), viewer=viewer
    )
    return [pattern.id for pattern in patterns]


def keyring(*key_ids: str, active: str | None = None) -> Keyring:
    """A keyring of fixed test keys (derived from the ids), `active` or the first active."""
    keys = {key_id: (key_id.encode() * 32)[:32] for key_id in key_ids}
    return Keyring(keys, active or (key_ids[0] if key_ids else None))


def key_setting(*key_ids: str) -> str:
    """The same keys as MEMORY_ENCRYPTION_KEYS would carry them."""
    return ",".join(
        f"{key_id}:{base64.b64encode((key_id.encode() * 32)[:32]).decode()}" for key_id in key_ids
    )


class Clock:
    """A clock a test moves: microseconds since the epoch, starting at the real now."""

    def __init__(self) -> None:
        self.now_us = time.time_ns() // 1000

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * 1_000_000)


@dataclass
class Backend:
    """Opens stores of one backend kind; closes every one it opened."""

    name: str
    root: Path
    redis: RedisOptions | None = None
    opened: list[PatternStore] = field(default_factory=list)
    clock: Clock = field(default_factory=Clock)

    async def open(self, replica: str = "a", keys: Keyring | None = None) -> PatternStore:
        """A store on the backend's data (for Redis: a replica with its own cache),
        sealing with `keys` (by default one key, "k1")."""
        keys = keyring("k1") if keys is None else keys
        store: EmbeddedStore | RedisStore
        if self.redis is None:
            store = EmbeddedStore(self.root / "embedded", keys, clock=self.clock)
        else:
            store = RedisStore(self.root / f"replica-{replica}", self.redis, keys, clock=self.clock)
        try:
            await store.open()
        except BaseException:
            await store.close()
            raise
        self.opened.append(store)
        return store

    def files(self, replica: str = "a") -> list[Path]:
        """The SQLite file (with WAL and shared memory) the store keeps on disk."""
        if self.redis is None:
            path = self.root / "embedded" / "patterns.sqlite3"
        else:
            path = self.root / f"replica-{replica}" / CACHE_FILE
        return [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]

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
    assert await a.count(NS, None, "agents.tier", viewer=VIEWER) == await b.count(
        NS, None, "agents.tier", viewer=VIEWER
    )
    assert await b.delete(NS, "run-3", viewer=VIEWER)
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
    monkeypatch.setattr(redis_replica, "LOG_BATCH", 3)
    monkeypatch.setattr(redis_replica, "FETCH_BATCH", 2)
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
    await writer.delete(NS, "run-3", viewer=VIEWER)
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
    assert await fresh.count(NS, None, "", viewer=VIEWER) == await writer.count(
        NS, None, "", viewer=VIEWER
    )


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
    assert await b.count(NS, None, "", viewer=VIEWER) == (0, [])
    assert await b.get(NS, "run-1", viewer=VIEWER) is None
    assert await page_ids(b, namespace="team-b") == ["run-1"]  # Other namespaces keep theirs.
    assert not (await a.put(NS, corpus()[3], False)).deduped
    assert await page_ids(b) == ["run-4"]
    assert await page_ids(a) == ["run-4"]


async def test_context_entries_set_read_replace_and_delete(store: PatternStore) -> None:
    first = await store.set_context(NS, "s1", "answers", '{"a": 1}', 60, owner=VIEWER)
    assert first.expire_us - first.update_us == 60_000_000
    await store.set_context(NS, "s1", "answers", '{"a": 2}', 60, owner=VIEWER)
    await store.set_context(NS, "s1", "choices", "x", 60, owner=VIEWER)
    await store.set_context(NS, "s2", "answers", "other session", 60, owner=VIEWER)
    await store.set_context("other-ns", "s1", "answers", "other namespace", 60, owner=VIEWER)
    entries = await store.get_context(NS, "s1", "", viewer=VIEWER)
    assert [(e.key, e.value) for e in entries] == [("answers", '{"a": 2}'), ("choices", "x")]
    assert [e.value for e in await store.get_context(NS, "s1", "choices", viewer=VIEWER)] == ["x"]
    assert await store.get_context(NS, "s1", "missing", viewer=VIEWER) == []
    assert await store.delete_context(NS, "s1", "choices", owner=VIEWER) == 1
    assert await store.delete_context(NS, "s1", "choices", owner=VIEWER) == 0
    assert await store.delete_context(NS, "s1", "", owner=VIEWER) == 1
    assert await store.get_context(NS, "s1", "", viewer=VIEWER) == []
    assert [e.value for e in await store.get_context(NS, "s2", "", viewer=VIEWER)] == [
        "other session"
    ]
    assert [e.value for e in await store.get_context("other-ns", "s1", "", viewer=VIEWER)] == [
        "other namespace"
    ]


async def test_context_sessions_and_keys_never_collide(store: PatternStore) -> None:
    # "a" + "b:c" and "a:b" + "c" join to the same text; they are different entries.
    await store.set_context(NS, "a", "b:c", "first", 60, owner=VIEWER)
    assert await store.get_context(NS, "a:b", "c", viewer=VIEWER) == []
    await store.set_context(NS, "a:b", "c", "second", 60, owner=VIEWER)
    assert [item.value for item in await store.get_context(NS, "a", "b:c", viewer=VIEWER)] == [
        "first"
    ]
    assert [item.value for item in await store.get_context(NS, "a:b", "c", viewer=VIEWER)] == [
        "second"
    ]


async def test_context_entries_expire(store: PatternStore) -> None:
    await store.set_context(NS, "short", "gone", "soon", 0.05, owner=VIEWER)
    await store.set_context(NS, "short", "kept", "later", 60, owner=VIEWER)

    async def keys() -> list[str]:
        return [entry.key for entry in await store.get_context(NS, "short", "", viewer=VIEWER)]

    # Expiry happens on the store's clock; wait (bounded) for it, not a fixed time.
    assert await eventually(keys, lambda found: found == ["kept"], within=10)
    assert await store.delete_context(NS, "short", "gone", owner=VIEWER) == 0


async def test_a_private_context_entry_is_its_owners_alone(store: PatternStore) -> None:
    await store.set_context(NS, "s1", "answers", "alice's", 60, owner="alice")
    # To bob the entry does not exist: the same answers as for a missing one.
    assert await store.get_context(NS, "s1", "", viewer="bob") == []
    assert await store.get_context(NS, "s1", "answers", viewer="bob") == []
    assert await store.delete_context(NS, "s1", "answers", owner="bob") == 0
    assert await store.delete_context(NS, "s1", "", owner="bob") == 0
    # bob's write under the same key is his own entry, beside alice's.
    await store.set_context(NS, "s1", "answers", "bob's", 60, owner="bob")
    mine = await store.get_context(NS, "s1", "", viewer="alice")
    assert [(e.key, e.value, e.owner, e.shared) for e in mine] == [
        ("answers", "alice's", "alice", False)
    ]
    assert [e.value for e in await store.get_context(NS, "s1", "", viewer="bob")] == ["bob's"]
    assert await store.delete_context(NS, "s1", "", owner="bob") == 1
    assert [e.value for e in await store.get_context(NS, "s1", "", viewer="alice")] == ["alice's"]


async def test_a_shared_context_entry_is_read_by_all_and_changed_by_its_owner(
    store: PatternStore,
) -> None:
    shared = await store.set_context(NS, "s1", "plan", "v1", 60, owner="alice", shared=True)
    assert (shared.owner, shared.shared) == ("alice", True)
    seen = await store.get_context(NS, "s1", "", viewer="bob")
    assert [(e.key, e.value, e.owner, e.shared) for e in seen] == [("plan", "v1", "alice", True)]
    with pytest.raises(ContextOwnedError):
        await store.set_context(NS, "s1", "plan", "bob's", 60, owner="bob", shared=True)
    assert await store.delete_context(NS, "s1", "plan", owner="bob") == 0
    # bob may keep a private entry under the key: he sees his own.
    await store.set_context(NS, "s1", "plan", "bob's", 60, owner="bob")
    assert [e.value for e in await store.get_context(NS, "s1", "plan", viewer="bob")] == ["bob's"]
    assert [e.value for e in await store.get_context(NS, "s1", "plan", viewer="carol")] == ["v1"]
    # Its owner changes it, and un-sharing moves it back to private.
    await store.set_context(NS, "s1", "plan", "v2", 60, owner="alice", shared=True)
    await store.set_context(NS, "s1", "plan", "v3", 60, owner="alice")
    assert await store.get_context(NS, "s1", "", viewer="carol") == []
    assert [e.value for e in await store.get_context(NS, "s1", "", viewer="alice")] == ["v3"]
    await store.set_context(NS, "s1", "plan", "v4", 60, owner="alice", shared=True)
    assert [(e.value, e.shared) for e in await store.get_context(NS, "s1", "", viewer="alice")] == [
        ("v4", True)
    ]
    assert await store.delete_context(NS, "s1", "", owner="alice") == 1
    assert await store.get_context(NS, "s1", "", viewer="carol") == []


# --- SENSITIVE patterns: owner only ---------------------------------------------------


def sensitive(
    pattern_id: str, content: str, owner: str = VIEWER, hours: int = 0
) -> memory_pb2.Pattern:
    """A SENSITIVE run pattern of `owner`, as the servicer hands it to the store."""
    pattern = run_pattern(
        pattern_id,
        content,
        agents=(("auditor", "premium", True),),
        cost=2.0,
        tags=("finance",),
        hours=hours,
    )
    pattern.classification = common_pb2.CLASSIFICATION_SENSITIVE
    pattern.owner = owner
    return pattern


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


# --- retention -----------------------------------------------------------------------


async def test_expired_patterns_are_hidden_then_purged(backend: Backend) -> None:
    store = await backend.open()
    clock = backend.clock
    later = run_pattern("later", "expires in a minute: retention test", hours=1)
    later.expire_time.FromMicroseconds(clock.now_us + 60_000_000)
    secret = sensitive("secret-later", "expires in a minute: retention secret", hours=2)
    secret.expire_time.FromMicroseconds(clock.now_us + 60_000_000)
    kept = run_pattern("kept", "pinned: retention never applies", hours=3)
    kept.pinned = True
    for pattern in (later, secret, kept):
        await store.put(NS, pattern, False)
    assert await search_ids(store, "retention") == (["kept", "secret-later", "later"], 3)
    assert await store.purge_expired() == 0

    clock.advance(61)
    assert await store.get(NS, "later", viewer=VIEWER) is None
    assert await store.get(NS, "secret-later", viewer=VIEWER) is None
    assert await search_ids(store, "retention") == (["kept"], 1)
    assert await search_ids(store, "") == (["kept"], 1)
    assert await page_ids(store) == ["kept"]
    assert (await store.count(NS, None, "template_id", viewer=VIEWER))[0] == 1
    assert set(await store.get_many(NS, ["later", "secret-later", "kept"], viewer=VIEWER)) == {
        "kept"
    }
    assert not await store.delete(NS, "later", viewer=VIEWER)

    assert await store.purge_expired() == 2
    assert await store.purge_expired() == 0
    # Gone for good: storing it again (retained anew) is a new pattern, not a dedupe.
    later.expire_time.FromMicroseconds(clock.now_us + 60_000_000)
    again = await store.put(NS, later, False)
    assert (again.deduped, again.replaced) == (False, False)
    await backend.close(store)
    reopened = await backend.open()
    assert await page_ids(reopened) == ["kept", "later"]
    assert await reopened.get(NS, "secret-later", viewer=VIEWER) is None


async def test_an_expired_pattern_counts_as_absent_for_writes(store: PatternStore) -> None:
    # Sent already expired (say a clock skew): hidden at once, and the id is free.
    stale = sensitive("stale", "already expired")
    stale.expire_time.FromSeconds(1)
    await store.put(NS, stale, False)
    assert await store.get(NS, "stale", viewer=VIEWER) is None
    fresh = run_pattern("stale", "written by bob after expiry")
    fresh.owner = "bob"
    outcome = await store.put(NS, fresh, False)
    assert (outcome.deduped, outcome.replaced) == (False, False)
    got = await store.get(NS, "stale", viewer="bob")
    assert got is not None
    assert got.content == "written by bob after expiry"


async def test_replicas_purging_at_once_delete_each_expired_pattern_once(
    redis_backend: Backend,
) -> None:
    a = await redis_backend.open("a")
    b = await redis_backend.open("b")
    clock = redis_backend.clock
    expiring = [run_pattern(f"p-{n}", "short-lived") for n in range(6)]
    expiring.append(sensitive("s-1", "short-lived secret"))
    for pattern in expiring:
        pattern.expire_time.FromMicroseconds(clock.now_us + 1_000_000)
        await a.put(NS, pattern, False)
    await a.put(NS, run_pattern("kept", "long-lived"), False)
    assert len(await page_ids(b)) == 8  # b's cache holds them all.

    clock.advance(2)
    assert sum(await asyncio.gather(a.purge_expired(), b.purge_expired())) == 7
    assert redis_backend.redis is not None
    raw = redis_backend.raw_client()
    try:
        tag = f"{redis_backend.redis.key_prefix}:{{{NS}}}"
        assert await raw.exists(*[f"{tag}:pattern:{p.id}" for p in expiring]) == 0
        assert await raw.exists(f"{tag}:pattern:kept") == 1
    finally:
        await raw.aclose()
    assert await page_ids(a) == await page_ids(b) == ["kept"]
    clock.advance(-2)  # Were they only hidden, they would be back now.
    assert await page_ids(a) == await page_ids(b) == ["kept"]
