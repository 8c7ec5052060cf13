"""The audit log on Redis: one stream shared by every replica, read from any of them.

Two in-process memory services on one real redis-server: ListAuditEvents on
either shows the calls served by both, newest first, filtered and paged.
Then RedisStreamAuditLog on its own: the raw stream, trimming, the scan
budget, an outage on write (one retry) and on read (UNAVAILABLE), and a
Redis Cluster.

Audit records are written in the background after each call. A replica's
own ListAuditEvents first waits for its queue to drain, so reading on a
replica is how a test knows that replica's earlier records are in Redis
(`drained`): no sleeping. Reads are themselves audited (action AUDIT), and
those records land whenever their replica next drains, so assertions about
exact lists filter them out.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from redis.asyncio import Redis

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from memory_service.access import redis_audit
from memory_service.access.audit import AuditRecord, FileAuditLog
from memory_service.access.redis_audit import AuditLogUnavailableError, RedisStreamAuditLog
from memory_service.servicekit.errors import ServiceError
from memory_service.store.redis.link import RedisOptions
from tests.support.redis_servers import RedisCluster, RedisServer, standalone
from tests.support.stack import Stack

NS = "audit-shared"
CONTENT = "quokka marmalade ledger"  # Pattern content; must never reach the audit stream.
NOT_AUDIT = "action != AUDIT"


def store(pattern_id: str) -> memory_pb2.StorePatternRequest:
    return memory_pb2.StorePatternRequest(
        namespace=NS,
        pattern=memory_pb2.Pattern(
            id=pattern_id, type=memory_pb2.PATTERN_TYPE_INSIGHT, content=CONTENT
        ),
    )


def get(pattern_id: str) -> memory_pb2.GetPatternRequest:
    return memory_pb2.GetPatternRequest(namespace=NS, pattern_id=pattern_id)


def listing(
    filter_text: str = NOT_AUDIT, page_size: int = 0, page_token: str = "", namespace: str = NS
) -> memory_pb2.ListAuditEventsRequest:
    return memory_pb2.ListAuditEventsRequest(
        namespace=namespace, filter=filter_text, page_size=page_size, page_token=page_token
    )


async def drained(stub: memory_pb2_grpc.MemoryServiceAsyncStub) -> None:
    """Returns once every record of the replica's earlier calls is in Redis."""
    await stub.ListAuditEvents(listing(page_size=1), timeout=5)


@contextlib.asynccontextmanager
async def replicas(
    tmp_path: Path, overrides: Mapping[str, object], count: int = 2
) -> AsyncIterator[list[memory_pb2_grpc.MemoryServiceAsyncStub]]:
    """`count` memory services on the redis store, each with its own data directory."""
    stacks = [
        Stack(tmp_path / f"replica-{n}", memory_overrides={"store": "redis", **overrides})
        for n in range(count)
    ]
    try:
        for stack in stacks:
            await stack.start_memory()
        yield [stack.memory_stub() for stack in stacks]
    finally:
        for stack in stacks:
            await stack.close()


@pytest.fixture
async def two_replicas(
    tmp_path: Path, redis_server: RedisServer, key_prefix: str
) -> AsyncIterator[list[memory_pb2_grpc.MemoryServiceAsyncStub]]:
    overrides = {"redis_url": redis_server.url, "redis_key_prefix": key_prefix}
    async with replicas(tmp_path, overrides) as stubs:
        yield stubs


async def rpc_error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


# --- two replicas, one log -----------------------------------------------------------


async def test_each_replica_reads_every_replicas_records(
    two_replicas: list[memory_pb2_grpc.MemoryServiceAsyncStub],
) -> None:
    a, b = two_replicas
    await a.StorePattern(store("p1"), timeout=5)
    await drained(a)
    await b.GetPattern(get("p1"), timeout=5)
    assert (await rpc_error(b.GetPattern(get("missing"), timeout=5))).code() == (
        grpc.StatusCode.NOT_FOUND
    )
    await drained(b)
    await a.DeletePattern(memory_pb2.DeletePatternRequest(namespace=NS, pattern_id="p1"), timeout=5)

    expected = [
        ("delete", "OK", ["p1"]),
        ("get", "NOT_FOUND", []),
        ("get", "OK", ["p1"]),
        ("store", "OK", ["p1"]),
    ]
    await drained(a)
    for stub in (a, b):
        events = (await stub.ListAuditEvents(listing(), timeout=5)).events
        assert [(e.action, e.outcome, list(e.pattern_ids)) for e in events] == expected
        times = [e.event_time.ToDatetime() for e in events]
        assert times == sorted(times, reverse=True)
        assert len({e.request_id for e in events}) == len(events), "one record per call"

    async def actions(filter_text: str) -> list[tuple[str, str]]:
        page = await b.ListAuditEvents(listing(f"{NOT_AUDIT} AND {filter_text}"), timeout=5)
        return [(e.action, e.outcome) for e in page.events]

    assert await actions("action = STORE") == [("store", "OK")]
    assert await actions("outcome = NOT_FOUND") == [("get", "NOT_FOUND")]
    assert await actions('principal = "anonymous"') == [(act, out) for act, out, _ in expected]
    assert await actions('principal = "someone-else"') == []
    # Reads are audited too, and every replica's reads are in the one log.
    audits = await a.ListAuditEvents(listing("action = AUDIT"), timeout=5)
    assert audits.events, "reading the log is audited"


async def test_paging_walks_every_record_once_while_records_arrive(
    two_replicas: list[memory_pb2_grpc.MemoryServiceAsyncStub],
) -> None:
    a, b = two_replicas
    for n in range(7):
        # Drained after each call: across replicas, the stream's order is the
        # order in which each replica's background writer reached Redis.
        replica = a if n % 2 else b
        await replica.StorePattern(store(f"p{n}"), timeout=5)
        await drained(replica)

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        # Alternate replicas: a token from one is good on the other.
        page = await (a, b)[pages % 2].ListAuditEvents(
            listing("action = STORE", page_size=2, page_token=token), timeout=5
        )
        pages += 1
        assert len(page.events) <= 2
        seen += [e.pattern_ids[0] for e in page.events]
        token = page.next_page_token
        if not token:
            break
        # A record arriving mid-walk is newer than the cursor: no repeats, no shifts.
        await b.StorePattern(store(f"late{pages}"), timeout=5)
        await drained(b)
    assert seen == [f"p{n}" for n in reversed(range(7))]
    assert pages == 4


async def test_bad_filters_and_tokens_are_invalid_argument(
    two_replicas: list[memory_pb2_grpc.MemoryServiceAsyncStub],
) -> None:
    a, b = two_replicas
    for n in range(3):
        await a.StorePattern(store(f"p{n}"), timeout=5)
    await drained(a)
    first = await a.ListAuditEvents(listing("action = STORE", page_size=1), timeout=5)
    assert first.next_page_token

    for request in (
        listing("outcome = NOT_FOUND", page_size=1, page_token=first.next_page_token),
        listing("action = STORE", page_size=1, page_token=first.next_page_token, namespace="x"),
        listing("action = STORE", page_size=1, page_token="not-a-token"),  # noqa: S106
        listing("action = NOT_AN_ACTION"),
        listing("nonsense ="),
        listing(page_size=-1),
    ):
        error = await rpc_error(b.ListAuditEvents(request, timeout=5))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, request


async def test_the_stream_holds_json_records_without_pattern_content(
    two_replicas: list[memory_pb2_grpc.MemoryServiceAsyncStub],
    redis_server: RedisServer,
    key_prefix: str,
) -> None:
    a, b = two_replicas
    await a.StorePattern(store("p1"), timeout=5)
    await drained(a)
    await b.SearchPatterns(
        memory_pb2.SearchPatternsRequest(namespace=NS, query="quokka"), timeout=5
    )
    await drained(b)

    client = Redis.from_url(redis_server.url)
    try:
        assert await client.type(f"{key_prefix}:audit") == b"stream"
        entries = await client.xrange(f"{key_prefix}:audit")
    finally:
        await client.aclose()
    assert len(entries) >= 2
    for _, fields in entries:
        assert set(fields) == {b"record"}
        raw = fields[b"record"]
        assert b"\n" not in raw
        assert raw.isascii()
        assert b"quokka" not in raw
        assert b"marmalade" not in raw
        data = json.loads(raw)
        assert AuditRecord.from_json(data).to_json() == data
    actions = [json.loads(fields[b"record"])["action"] for _, fields in entries]
    # The drains' own reads land in between, whenever their replica next writes.
    assert [action for action in actions if action != "audit"] == ["store", "search"]


# --- RedisStreamAuditLog on its own -------------------------------------------------


def record(n: int, action: str = "store", namespace: str = NS) -> AuditRecord:
    return AuditRecord(
        principal="alice",
        namespace=namespace,
        action=action,
        pattern_ids=(f"p{n}",),
        event_time=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n),
        request_id=f"req-{n}",
    )


async def read_all(
    log: RedisStreamAuditLog | FileAuditLog,
    filter_text: str = "",
    page_size: int = 2,
    namespace: str | None = None,
) -> tuple[list[str], int]:
    """Every matching record's request id, walking the pages, and the number of pages."""
    ids: list[str] = []
    token, pages = "", 0
    while True:
        found, token = await log.read(namespace, filter_text, page_size, token)
        pages += 1
        ids += [r.request_id for r in found]
        if not token:
            return ids, pages


@contextlib.asynccontextmanager
async def stream_log(
    options: RedisOptions, max_entries: int = 1000
) -> AsyncIterator[RedisStreamAuditLog]:
    log = RedisStreamAuditLog(options, max_entries)
    try:
        yield log
    finally:
        await log.aclose()


async def test_reads_match_the_file_log(
    tmp_path: Path, redis_server: RedisServer, key_prefix: str
) -> None:
    """Same records, same filters, same pages: the stream reads like FileAuditLog."""
    records = [
        record(n, action=("store", "get", "delete")[n % 3], namespace=("a", "b")[n % 2])
        for n in range(20)
    ]
    file_log = FileAuditLog(tmp_path / "audit.log", max_bytes=1 << 20, backups=1)
    options = RedisOptions(url=redis_server.url, key_prefix=key_prefix)
    async with stream_log(options) as log:
        await log.write_many(records)
        await file_log.write_many(records)
        try:
            for filter_text, namespace in [
                ("", None),
                ("action = GET", None),
                ("", "a"),
                ('action = DELETE AND request_id != "req-5"', "b"),
                ('pattern_ids:"p7"', None),
                ("action = AUDIT", None),
            ]:
                for size in (1, 3, 100):
                    assert await read_all(log, filter_text, size, namespace) == await read_all(
                        file_log, filter_text, size, namespace
                    ), (filter_text, namespace, size)
        finally:
            file_log.close()
        everything, _ = await read_all(log, page_size=100)
        assert everything == [f"req-{n}" for n in reversed(range(20))]
        with pytest.raises(ValueError, match="never means every namespace"):
            await log.read("", "", 10, "")


async def test_short_pages_when_the_scan_budget_runs_out(
    redis_server: RedisServer, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_audit, "READ_CHUNK", 2)
    monkeypatch.setattr(redis_audit, "SCAN_BUDGET", 4)
    # One GET among 30 records: most budgets end with nothing found.
    records = [record(n, action="get" if n == 3 else "store") for n in range(30)]
    async with stream_log(RedisOptions(url=redis_server.url, key_prefix=key_prefix)) as log:
        await log.write_many(records)
        # Foreign entries (another tool writing the key) are skipped, not fatal.
        await log._client.xadd(log.key, {"something": "else"})
        await log._client.xadd(log.key, {"record": "{not json"})
        first, token = await log.read(None, "action = GET", 10, "")
        assert first == []
        assert token, "an empty page still carries a token to go on"
        ids, pages = await read_all(log, "action = GET", 10)
        assert ids == ["req-3"]
        # 32 entries, 4 per call; a ninth call finds the end (a full last chunk cannot tell).
        assert pages == 9
        everything, _ = await read_all(log, "", 3)
        assert everything == [f"req-{n}" for n in reversed(range(30))]


async def test_the_stream_is_trimmed_to_about_max_entries(
    redis_server: RedisServer, key_prefix: str
) -> None:
    async with stream_log(
        RedisOptions(url=redis_server.url, key_prefix=key_prefix), max_entries=10
    ) as log:
        for start in range(0, 1000, 100):
            await log.write_many([record(n) for n in range(start, start + 100)])
        length = await log._client.xlen(log.key)
        # "~" trims whole stream nodes (100 entries by default): never below 10.
        assert 10 <= length <= 200
        newest, _ = await log.read(None, "", 1, "")
        assert [r.request_id for r in newest] == ["req-999"]


async def test_a_batch_redis_missed_is_retried_once(tmp_path: Path) -> None:
    with standalone(tmp_path / "redis") as server:
        options = RedisOptions(url=server.url, timeout_seconds=0.5, retries=0)
        async with stream_log(options) as log:
            await log.write_many([record(0)])
            server.stop()
            with pytest.raises(AuditLogUnavailableError, match="1 records kept for one retry"):
                await log.write_many([record(1)])
            with pytest.raises(AuditLogUnavailableError, match="1 held since the last failure"):
                await log.write_many([record(2)])  # record(1) is dropped now.
            with pytest.raises(ServiceError) as raised:
                await log.read(None, "", 10, "")
            assert raised.value.code == grpc.StatusCode.UNAVAILABLE
            assert "audit log" in str(raised.value)

            server.start()  # Same port; the data is gone (no persistence): only new writes.
            await log.write_many([record(3)])
            ids, _ = await read_all(log, page_size=10)
            assert ids == ["req-3", "req-2"], "the held batch went first; the older was dropped"

            log.close()
            with pytest.raises(RuntimeError, match="closed"):
                await log.write_many([record(4)])


async def test_a_replica_whose_redis_is_down_answers_unavailable(tmp_path: Path) -> None:
    with standalone(tmp_path / "redis") as server:
        overrides: dict[str, object] = {
            "redis_url": server.url,
            "redis_timeout_seconds": 0.5,
            "redis_retries": 0,
        }
        async with replicas(tmp_path, overrides, count=1) as (stub,):
            await stub.StorePattern(store("p1"), timeout=5)
            await drained(stub)
            server.stop()
            error = await rpc_error(stub.ListAuditEvents(listing(), timeout=10))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "audit log" in (error.details() or "")
            server.start()


async def test_on_a_cluster(tmp_path: Path, redis_cluster: RedisCluster, key_prefix: str) -> None:
    overrides = {"redis_cluster_nodes": redis_cluster.nodes, "redis_key_prefix": key_prefix}
    async with replicas(tmp_path, overrides) as (a, b):
        await a.StorePattern(store("p1"), timeout=5)
        await drained(a)
        await b.GetPattern(get("p1"), timeout=5)
        await drained(b)
        for stub in (a, b):
            events = (await stub.ListAuditEvents(listing(), timeout=5)).events
            assert [(e.action, list(e.pattern_ids)) for e in events] == [
                ("get", ["p1"]),
                ("store", ["p1"]),
            ]
        paged: list[str] = []
        token = ""
        while True:
            page = await b.ListAuditEvents(listing(page_size=1, page_token=token), timeout=5)
            paged += [e.action for e in page.events]
            token = page.next_page_token
            if not token:
                break
        assert paged == ["get", "store"]
