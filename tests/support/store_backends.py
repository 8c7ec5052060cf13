"""Every storage backend, opened the same way, for the store conformance tests.

The embedded store, Redis standalone and Redis Cluster (real servers, from
tests/integration/conftest.py), with a corpus of patterns and the reads the
tests compare. The fixtures are imported by the test modules that use them.
"""

from __future__ import annotations

import base64
import time
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
from executor_service.runs.forms import to_form_value
from memory_service.search.filter import Node, compile_filter
from memory_service.search.index import PageQuery, ReadQuery, every_should
from memory_service.search.query import parse_query
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.security.crypto import Keyring
from memory_service.store.base import PatternStore
from memory_service.store.embedded import EmbeddedStore
from memory_service.store.redis.link import RedisOptions
from memory_service.store.redis.replica import CACHE_FILE
from memory_service.store.redis.store import RedisStore
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
        ReadQuery(namespace, terms, where(condition), 10, min_should_match=every_should(terms)),
        viewer=viewer,
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


@pytest.fixture
def redis_backend(backend: Backend) -> Backend:
    if backend.redis is None:
        pytest.skip("replicas and caches are a Redis backend matter")
    return backend


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
