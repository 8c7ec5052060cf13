"""Redis only: several replicas of one store, and a cache that can go missing.

Part of the store conformance suite (test_store_conformance.py), on Redis
standalone and Redis Cluster; the embedded store skips these.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from attune.memory.v1 import memory_pb2
from memory_service.store.base import PatternStore
from memory_service.store.redis import replica as redis_replica
from memory_service.store.redis.replica import CACHE_FILE
from tests.support.store_backends import (  # The backends, and their fixtures.
    NS,
    VIEWER,
    Backend,
    backend,
    corpus,
    page_ids,
    redis_backend,
    search_ids,
)

__all__ = ["backend", "redis_backend"]  # Fixtures: imported for pytest.


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
