"""What the stores tell the metrics: retention purges by classification on
every backend, Redis calls and errors by operation, and how far behind Redis
a replica's search cache was when it caught up."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from pathlib import Path

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service import metrics
from memory_service.retention_sweep import RetentionSweep
from memory_service.store.redis.link import RedisOptions
from memory_service.store.redis.store import RedisStore
from tests.support.scrape import Scrape, read
from tests.support.store_backends import (  # The backends, and their fixtures.
    NS,
    Backend,
    backend,
    keyring,
    page_ids,
    redis_backend,
    run_pattern,
    sensitive,
)

__all__ = ["backend", "redis_backend"]  # Fixtures: imported for pytest.


def scrape() -> Scrape:
    return read(metrics.REGISTRY)


def expiring(backend: Backend, seconds: float = 60.0) -> list[memory_pb2.Pattern]:
    """Two PUBLIC, one INTERNAL and one SENSITIVE pattern expiring in `seconds`."""
    patterns = []
    for pattern_id, classification in (
        ("pub-1", common_pb2.CLASSIFICATION_PUBLIC),
        ("pub-2", common_pb2.CLASSIFICATION_PUBLIC),
        ("int-1", common_pb2.CLASSIFICATION_INTERNAL),
    ):
        pattern = run_pattern(pattern_id, "short-lived")
        pattern.classification = classification
        patterns.append(pattern)
    patterns.append(sensitive("sen-1", "short-lived secret"))
    for pattern in patterns:
        pattern.expire_time.FromMicroseconds(backend.clock.now_us + int(seconds * 1e6))
    return patterns


async def test_a_purge_counts_what_it_deleted_by_classification(backend: Backend) -> None:
    store = await backend.open()
    for pattern in expiring(backend):
        await store.put(NS, pattern, False)
    kept = run_pattern("kept", "long-lived")
    kept.classification = common_pb2.CLASSIFICATION_INTERNAL
    await store.put(NS, kept, False)
    counted: Counter[str] = Counter()

    def count(classification: str, purged: int) -> None:
        counted[classification] += purged

    assert await store.purge_expired(count) == 0
    assert counted == Counter()
    backend.clock.advance(61)
    assert await store.purge_expired(count) == 4
    assert counted == Counter({"PUBLIC": 2, "INTERNAL": 1, "SENSITIVE": 1})
    assert await store.purge_expired(count) == 0
    assert sum(counted.values()) == 4


async def test_the_sweep_counts_its_purges_into_the_metric(backend: Backend) -> None:
    store = await backend.open()
    for pattern in expiring(backend):
        await store.put(NS, pattern, False)
    backend.clock.advance(61)
    before = scrape()
    assert await RetentionSweep(store, 3600).sweep_once() == 4
    after = scrape()
    name = "attune_memory_retention_purged_total"
    for classification, purged in (("PUBLIC", 2), ("INTERNAL", 1), ("SENSITIVE", 1)):
        delta = after.value(name, classification=classification) - before.value(
            name, classification=classification
        )
        assert delta == purged, classification


async def test_replicas_purging_at_once_count_each_pattern_once(redis_backend: Backend) -> None:
    a = await redis_backend.open("a")
    b = await redis_backend.open("b")
    for pattern in expiring(redis_backend):
        await a.put(NS, pattern, False)
    assert len(await page_ids(b)) == 4  # b's cache lists them too.
    redis_backend.clock.advance(61)
    counted: Counter[str] = Counter()

    def count(classification: str, purged: int) -> None:
        counted[classification] += purged

    purged = await asyncio.gather(a.purge_expired(count), b.purge_expired(count))
    assert sum(purged) == 4
    assert counted == Counter({"PUBLIC": 2, "INTERNAL": 1, "SENSITIVE": 1})


def _calls(scraped: Scrape, operation: str) -> tuple[float, float]:
    return (
        scraped.value("attune_memory_redis_calls_total", operation=operation),
        scraped.value("attune_memory_redis_errors_total", operation=operation),
    )


async def test_redis_calls_are_counted_by_operation(redis_backend: Backend) -> None:
    store = await redis_backend.open()
    await store.put(NS, run_pattern("first", "warms the namespace up"), False)
    before = scrape()
    await store.put(NS, run_pattern("one", "counted once"), False)
    await store.get(NS, "one", viewer="alice")
    after = scrape()
    assert _calls(after, "put_pattern") == (
        _calls(before, "put_pattern")[0] + 1,
        _calls(before, "put_pattern")[1],
    )
    # A read by id asks for the reader's own SENSITIVE version, then the shared one.
    assert _calls(after, "get_pattern")[0] == _calls(before, "get_pattern")[0] + 2
    assert after.total("attune_memory_redis_errors_total") == before.total(
        "attune_memory_redis_errors_total"
    )
    assert after.label_values("attune_memory_redis_calls_total", "operation") <= {
        "ping",
        "cluster_info",
        "register_namespace",
        "list_namespaces",
        "put_pattern",
        "delete_pattern",
        "get_pattern",
        "read_log",
        "fetch_patterns",
        "set_context",
        "get_context",
        "list_context",
        "delete_context",
        "read_sealed",
        "reseal_pattern",
    }


async def test_unreachable_redis_counts_an_error_per_failed_call(tmp_path: Path) -> None:
    with socket.socket() as free:  # A port nothing listens on once closed.
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    options = RedisOptions(url=f"redis://127.0.0.1:{port}/0", timeout_seconds=0.5, retries=0)
    store = RedisStore(tmp_path, options, keyring("k1"))
    before = scrape()
    await store.open()  # Opens anyway; the first load fails (listing namespaces).
    try:
        assert not await store.ping()
    finally:
        await store.close()
    after = scrape()
    for operation in ("ping", "list_namespaces"):
        calls, errors = _calls(after, operation)
        calls_before, errors_before = _calls(before, operation)
        assert calls - calls_before >= 1, operation
        assert errors - errors_before == calls - calls_before, operation


def cache_lag() -> float:
    return scrape().value("attune_memory_cache_catch_up_lag_seconds")


async def test_cache_lag_is_the_age_of_the_oldest_change_a_catch_up_applied(
    redis_backend: Backend,
) -> None:
    a = await redis_backend.open("a")
    b = await redis_backend.open("b")
    await a.put(NS, run_pattern("zero", "before the measured writes"), False)
    await page_ids(b)
    metrics.CACHE_CATCH_UP.forget()
    await page_ids(b)  # Nothing new: in step.
    assert cache_lag() == 0

    began = time.time()
    await a.put(NS, run_pattern("first", "the oldest change b has not seen"), False)
    first_written = time.time()
    for n in range(5):
        await a.put(NS, run_pattern(f"later-{n}", "newer changes"), False)
    reading = time.time()
    assert len(await page_ids(b)) == 7
    done = time.time()
    lag = cache_lag()
    # The first change's age when b applied it: at least from its write to
    # the read (Redis stamps entries in whole milliseconds), at most from
    # before it was written to after the read.
    assert reading - first_written - 0.001 <= lag <= done - began + 0.001

    await page_ids(b)
    assert cache_lag() == 0
