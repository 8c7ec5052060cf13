"""No pattern can make its namespace unreadable (issue 10, finding 6), on both backends.

The poison pill: a write under the 8 MiB request limit whose stored form
grew past what a response can carry was committed, its writer got
RESOURCE_EXHAUSTED while the audit said OK, and from then on GetPattern,
ListPatterns (even page_size=1) and search failed for every reader of the
namespace. Now the stored size is bounded before the commit, every page
stays within what a default gRPC client accepts (4 MiB), and a record that
is too large or damaged anyway is left out of lists and searches, with a
precise error on GetPattern.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
import pytest
from redis.asyncio import Redis

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from memory_service.security.crypto import Keyring
from memory_service.servicekit.lifecycle import MAX_MESSAGE_BYTES
from memory_service.store.base import PatternStore
from memory_service.store.embedded import EmbeddedStore
from memory_service.store.redis.link import RedisOptions
from memory_service.store.redis.store import RedisStore
from tests.support.helpers import violations_of
from tests.support.redis_servers import RedisServer
from tests.support.stack import Stack

NS = "team-a"
MIB = 1024 * 1024
# What a gRPC client accepts by default: every response must fit.
CLIENT_LIMIT = 4 * MIB


@dataclass
class Backend:
    """A memory service on one backend, and direct access to what it stores."""

    name: str
    root: Path
    redis_url: str = ""
    prefix: str = ""

    def overrides(self) -> dict[str, object]:
        if self.name == "embedded":
            return {}
        return {"store": "redis", "redis_url": self.redis_url, "redis_key_prefix": self.prefix}

    async def direct(self) -> PatternStore:
        """The store itself, bypassing the service (as an older version wrote)."""
        store: EmbeddedStore | RedisStore
        if self.name == "embedded":
            store = EmbeddedStore(self.root / "memory", Keyring({}, None))
        else:
            options = RedisOptions(url=self.redis_url, key_prefix=self.prefix)
            store = RedisStore(self.root / "direct", options, Keyring({}, None))
        await store.open()
        return store

    async def damage(self, pattern_id: str) -> None:
        """Replaces a stored pattern's bytes with bytes that do not parse."""
        garbage = b"\xff\xff\xff not a pattern"
        if self.name == "embedded":
            db = sqlite3.connect(self.root / "memory" / "patterns.sqlite3")
            with db:
                db.execute("UPDATE docs SET body = ? WHERE doc_id = ?", (garbage, pattern_id))
            db.close()
        else:
            client = Redis.from_url(self.redis_url)
            key = f"{self.prefix}:{{{NS}}}:pattern:{pattern_id}"
            await cast(Awaitable[int], client.hset(key, mapping={"body": garbage}))
            await client.aclose()


@pytest.fixture(params=["embedded", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str) -> Backend:
    if request.param == "embedded":
        return Backend("embedded", tmp_path)
    server: RedisServer = request.getfixturevalue("redis_server")
    return Backend("redis", tmp_path, server.url, key_prefix)


async def serving(backend: Backend, **overrides: object) -> Stack:
    running = Stack(backend.root, memory_overrides={**backend.overrides(), **overrides})
    await running.start_memory()
    return running


@pytest.fixture
async def service(backend: Backend) -> AsyncIterator[Stack]:
    running = await serving(backend)
    try:
        yield running
    finally:
        await running.close()


def insight(pattern_id: str, content: str = "coverage gate", filler: int = 0) -> memory_pb2.Pattern:
    pattern = memory_pb2.Pattern(
        id=pattern_id, type=memory_pb2.PATTERN_TYPE_INSIGHT, content=content
    )
    if filler:
        pattern.metadata.fields["blob"].string_value = "x" * filler
    return pattern


def store(pattern: memory_pb2.Pattern) -> memory_pb2.StorePatternRequest:
    return memory_pb2.StorePatternRequest(namespace=NS, pattern=pattern)


async def error_of(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


async def every_id(stub: memory_pb2_grpc.MemoryServiceAsyncStub, page_size: int) -> list[str]:
    """Every id ListPatterns pages through; each page within the client limit."""
    ids: list[str] = []
    token = ""
    while True:
        page = await stub.ListPatterns(
            memory_pb2.ListPatternsRequest(namespace=NS, page_size=page_size, page_token=token),
            timeout=30,
        )
        assert page.ByteSize() <= CLIENT_LIMIT
        ids += [pattern.id for pattern in page.patterns]
        token = page.next_page_token
        if not token:
            return ids


async def audited_outcomes(stub: memory_pb2_grpc.MemoryServiceAsyncStub) -> list[str]:
    page = await stub.ListAuditEvents(
        memory_pb2.ListAuditEventsRequest(namespace=NS, filter="action = STORE"), timeout=5
    )
    return [event.outcome for event in page.events]


async def test_a_write_that_would_outgrow_a_response_is_refused_before_it_commits(
    service: Stack,
) -> None:
    stub = service.memory_stub()
    await stub.StorePattern(store(insight("small")), timeout=5)
    # Just under the 8 MiB request limit: the stored form (namespace, owner,
    # times) would pass it, and no client could ever read it back.
    pill = insight("pill")
    pill.metadata.fields["blob"].string_value = "x"
    room = MAX_MESSAGE_BYTES - 200 - store(pill).ByteSize()
    pill.metadata.fields["blob"].string_value = "x" * room
    assert store(pill).ByteSize() < MAX_MESSAGE_BYTES
    refused = await error_of(stub.StorePattern(store(pill), timeout=30))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limit of 1048576 bytes" in violations_of(refused)["pattern"]
    # The audit says what the writer heard.
    assert (await audited_outcomes(stub))[:2] == ["INVALID_ARGUMENT", "OK"]
    # Nothing was stored; every read of the namespace still answers.
    missing = await error_of(
        stub.GetPattern(memory_pb2.GetPatternRequest(namespace=NS, pattern_id="pill"), timeout=5)
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert await every_id(stub, 1) == ["small"]
    found = await stub.SearchPatterns(
        memory_pb2.SearchPatternsRequest(namespace=NS, query="coverage"), timeout=5
    )
    assert [r.pattern.id for r in found.results] == ["small"]


async def test_growth_from_scrubbing_is_checked_before_the_commit(backend: Backend) -> None:
    running = await serving(backend, max_pattern_bytes=80_000)
    try:
        stub = running.memory_stub()
        grows = insight("grows")
        # 64 KB of addresses, each replaced by the longer [IP_ADDRESS] token.
        grows.metadata.fields["hosts"].string_value = "8.8.8.8 " * 8000
        refused = await error_of(stub.StorePattern(store(grows), timeout=30))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "more than the limit of 80000 bytes" in violations_of(refused)["pattern"]
        assert (await audited_outcomes(stub))[0] == "INVALID_ARGUMENT"
        assert await every_id(stub, 10) == []
        batch = await stub.BatchStorePatterns(
            memory_pb2.BatchStorePatternsRequest(requests=[store(grows), store(insight("ok"))]),
            timeout=30,
        )
        assert [r.code for r in batch.results] == [grpc.StatusCode.INVALID_ARGUMENT.value[0], 0]
        assert "requests[0].pattern" in batch.results[0].message
        assert await every_id(stub, 10) == ["ok"]
    finally:
        await running.close()


async def test_pages_stay_within_what_a_client_accepts(service: Stack) -> None:
    stub = service.memory_stub()
    big = 900 * 1024  # Under the 1 MiB limit; six of them are not under 4 MiB.
    ids = [f"big-{n}" for n in range(6)]
    for pattern_id in ids:
        await stub.StorePattern(store(insight(pattern_id, filler=big)), timeout=30)
    listed = await every_id(stub, 6)
    assert sorted(listed) == ids  # Every one, once, over more than one page.
    first = await stub.ListPatterns(
        memory_pb2.ListPatternsRequest(namespace=NS, page_size=6), timeout=30
    )
    assert 0 < len(first.patterns) < 6
    assert first.next_page_token
    found: list[str] = []
    token = ""
    while True:
        page = await stub.SearchPatterns(
            memory_pb2.SearchPatternsRequest(
                namespace=NS, query="coverage", page_size=6, page_token=token
            ),
            timeout=30,
        )
        assert page.ByteSize() <= CLIENT_LIMIT
        assert page.total_size == 6
        found += [result.pattern.id for result in page.results]
        token = page.next_page_token
        if not token:
            break
    assert sorted(found) == ids


async def test_a_batch_stores_only_what_its_response_can_carry(service: Stack) -> None:
    stub = service.memory_stub()
    requests = [store(insight(f"b-{n}", filler=900 * 1024)) for n in range(5)]
    answer = await stub.BatchStorePatterns(
        memory_pb2.BatchStorePatternsRequest(requests=requests), timeout=60
    )
    assert answer.ByteSize() <= CLIENT_LIMIT
    codes = [result.code for result in answer.results]
    exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert codes == [0, 0, 0, 0, exhausted]
    assert "later batch" in answer.results[4].message
    # What was refused was not stored; what was answered OK was.
    assert sorted(await every_id(stub, 10)) == ["b-0", "b-1", "b-2", "b-3"]


async def test_records_stored_anyway_fail_alone(backend: Backend) -> None:
    """Too large (an older version had no limit) or damaged: the rest still reads."""
    direct = await backend.direct()
    await direct.put(NS, insight("huge", filler=5 * MIB), False)
    for pattern_id in ("a", "b", "broken"):
        await direct.put(NS, insight(pattern_id), False)
    await direct.close()
    await backend.damage("broken")

    running = await serving(backend)
    try:
        stub = running.memory_stub()
        too_big = await error_of(
            stub.GetPattern(
                memory_pb2.GetPatternRequest(namespace=NS, pattern_id="huge"), timeout=10
            )
        )
        assert too_big.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "delete it" in (too_big.details() or "")
        damaged = await error_of(
            stub.GetPattern(
                memory_pb2.GetPatternRequest(namespace=NS, pattern_id="broken"), timeout=10
            )
        )
        assert damaged.code() == grpc.StatusCode.DATA_LOSS
        got = await stub.GetPattern(
            memory_pb2.GetPatternRequest(namespace=NS, pattern_id="a"), timeout=10
        )
        assert got.pattern.id == "a"
        for page_size in (1, 2, 50):
            assert sorted(await every_id(stub, page_size)) == ["a", "b"]
        found = await stub.SearchPatterns(
            memory_pb2.SearchPatternsRequest(namespace=NS, query="coverage"), timeout=10
        )
        assert sorted(r.pattern.id for r in found.results) == ["a", "b"]
        counted = await stub.CountPatterns(
            memory_pb2.CountPatternsRequest(namespace=NS), timeout=10
        )
        assert counted.total_count >= 2
        # Both can be deleted, and a damaged id written again.
        for pattern_id in ("huge", "broken"):
            deleted = await stub.DeletePattern(
                memory_pb2.DeletePatternRequest(namespace=NS, pattern_id=pattern_id), timeout=10
            )
            assert deleted.deleted
        await stub.StorePattern(store(insight("broken")), timeout=10)
        assert sorted(await every_id(stub, 50)) == ["a", "b", "broken"]
    finally:
        await running.close()


async def test_the_executor_searches_a_namespace_of_large_patterns(stack: Stack) -> None:
    """Twenty patterns with the largest content: a page of them passed the 4 MiB
    the executor's memory client accepts, so every memory search failed."""
    memory = stack.memory_stub()
    content = "coverage gate " * 18_000  # About 250 KiB, under the 256 KiB content limit.
    for n in range(20):
        await memory.StorePattern(
            memory_pb2.StorePatternRequest(namespace="default", pattern=insight(f"i-{n}", content)),
            timeout=30,
        )
    executor = stack.executor_stub()
    for mode in (
        executor_pb2.SEARCH_RUNS_MODE_MEMORY,
        executor_pb2.SEARCH_RUNS_MODE_AUTO,
        executor_pb2.SEARCH_RUNS_MODE_HYBRID,
    ):
        answer = await executor.SearchRuns(
            executor_pb2.SearchRunsRequest(query="coverage", page_size=100, mode=mode), timeout=30
        )
        assert not answer.degraded
        assert 0 < len(answer.hits) < 20  # As many as one response carries.
        assert answer.ByteSize() <= CLIENT_LIMIT


async def test_unknown_fields_stored_by_an_older_version_are_never_served(
    backend: Backend,
) -> None:
    # Field 999, length-delimited, holding a secret: what a version before
    # requests dropped unknown fields (issue 10, finding 4) may have stored.
    secret = b"AKIAZ7Q4M2W8R5T1Y6UX victim.person@example.org"
    extra = b"\xba\x3e" + bytes([len(secret)]) + secret
    carrying = memory_pb2.Pattern.FromString(insight("old").SerializeToString() + extra)
    assert secret in carrying.SerializeToString()  # The parser kept it.
    direct = await backend.direct()
    await direct.put(NS, carrying, False)
    await direct.close()
    running = await serving(backend)
    try:
        stub = running.memory_stub()
        got = await stub.GetPattern(
            memory_pb2.GetPatternRequest(namespace=NS, pattern_id="old"), timeout=10
        )
        listed = await stub.ListPatterns(memory_pb2.ListPatternsRequest(namespace=NS), timeout=10)
        found = await stub.SearchPatterns(
            memory_pb2.SearchPatternsRequest(namespace=NS, query="coverage"), timeout=10
        )
        assert got.pattern.id == "old"
        for answer in (got, listed, found):
            assert secret not in answer.SerializeToString()
    finally:
        await running.close()
