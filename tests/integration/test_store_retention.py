"""Retention: expired patterns are hidden, then purged, on every storage backend.

Part of the store conformance suite (test_store_conformance.py).
"""

from __future__ import annotations

import asyncio

from memory_service.store.base import PatternStore
from tests.support.store_backends import (  # The backends, and their fixtures.
    NS,
    VIEWER,
    Backend,
    backend,
    page_ids,
    redis_backend,
    run_pattern,
    search_ids,
    sensitive,
    store,
)

__all__ = ["backend", "redis_backend", "store"]  # Fixtures: imported for pytest.


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
    # One ranking for the shared and the SENSITIVE half: the shortest text
    # first, then equal scores newest first.
    assert await search_ids(store, "retention") == (["kept", "later", "secret-later"], 3)
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
