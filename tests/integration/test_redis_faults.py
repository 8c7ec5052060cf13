"""The memory service on Redis: outages, data loss, and several replicas.

(a) Redis stops under a running memory service: readiness goes NOT_SERVING,
RPCs answer UNAVAILABLE saying why, and once the same redis-server is back
the service recovers by itself. (b) Replicas as real processes sharing one
Redis: whatever any replica acknowledged, a read started afterwards on any
other replica sees (read-your-writes), deletes included, also for a replica
started over existing data.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.dev.stack import ServiceProcess, memory_process
from executor_service.runs.forms import to_form_value
from memory_service.search.index import PageQuery, ReadQuery
from memory_service.security.crypto import Keyring
from memory_service.settings import MemorySettings
from memory_service.store.base import StoreUnavailableError
from memory_service.store.redis.link import RedisOptions
from memory_service.store.redis.store import RedisStore
from tests.support.helpers import eventually
from tests.support.redis_servers import RedisCluster, RedisServer, command, standalone
from tests.support.stack import Stack

SERVICE = memory_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
NS = "faults"


def pattern(pattern_id: str, content: str, coverage: float = 80.0) -> memory_pb2.Pattern:
    return memory_pb2.Pattern(
        id=pattern_id,
        type=memory_pb2.PATTERN_TYPE_EXECUTION,
        template_id="python_package_publish",
        content=content,
        success=True,
        agents=[
            memory_pb2.PatternAgent(role="test_runner", tier=common_pb2.TIER_PREMIUM, success=True)
        ],
        form_responses={"test_coverage_required": to_form_value(coverage)},
        tags=["python"],
    )


def store(item: memory_pb2.Pattern) -> memory_pb2.StorePatternRequest:
    return memory_pb2.StorePatternRequest(namespace=NS, pattern=item)


def search(query: str = "", filter_text: str = "") -> memory_pb2.SearchPatternsRequest:
    return memory_pb2.SearchPatternsRequest(
        namespace=NS, query=query, filter=filter_text, page_size=100
    )


# --- (a) Redis goes away under a running service ---------------------------------------


@dataclass
class RedisStack(Stack):
    """The in-process memory service of tests/conftest.py, on the redis store."""

    redis_url: str = ""
    key_prefix: str = "attune"

    def memory_settings(self) -> MemorySettings:
        return MemorySettings(
            port=self.memory_port,
            data_dir=self.root / "memory",
            store="redis",
            redis_url=self.redis_url,
            redis_key_prefix=self.key_prefix,
            redis_timeout_seconds=0.5,
            redis_retries=1,
            readiness_interval_seconds=0.05,
            auth_disabled=True,
        )


@contextlib.asynccontextmanager
async def memory_on(tmp_path: Path, server: RedisServer, prefix: str) -> AsyncIterator[RedisStack]:
    running = RedisStack(tmp_path, redis_url=server.url, key_prefix=prefix)
    await running.start_memory()
    try:
        yield running
    finally:
        await running.close()


class Readiness:
    """The readiness Watch stream: each read is the next status change."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # Its type stubs list no methods.
        self._watch = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=30)

    async def next(self) -> int:
        return int((await asyncio.wait_for(self._watch.read(), 15)).status)

    def cancel(self) -> None:
        self._watch.cancel()


async def unavailable(call: Any) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    return raised.value.details() or ""


async def test_redis_outage_is_unavailable_and_the_service_recovers_by_itself(
    tmp_path: Path, key_prefix: str
) -> None:
    with standalone(tmp_path / "redis", persistent=True) as server:
        async with memory_on(tmp_path, server, key_prefix) as running:
            stub = running.memory_stub()
            readiness = Readiness(running.channels[-1])
            assert await readiness.next() == SERVING
            await stub.StorePattern(store(pattern("before", "stored before the outage")), timeout=5)

            server.stop()
            assert await readiness.next() == NOT_SERVING
            message = await unavailable(
                stub.StorePattern(store(pattern("during", "not stored")), timeout=5)
            )
            assert "Redis at redis://127.0.0.1:" in message
            assert "unavailable" in message
            assert "Traceback" not in message
            for call in (
                stub.SearchPatterns(search("outage"), timeout=5),
                stub.GetPattern(
                    memory_pb2.GetPatternRequest(namespace=NS, pattern_id="before"), timeout=5
                ),
                stub.ListPatterns(memory_pb2.ListPatternsRequest(namespace=NS), timeout=5),
                stub.CountPatterns(memory_pb2.CountPatternsRequest(namespace=NS), timeout=5),
                stub.DeletePattern(
                    memory_pb2.DeletePatternRequest(namespace=NS, pattern_id="before"), timeout=5
                ),
            ):
                assert "unavailable" in await unavailable(call)
            batch = await stub.BatchStorePatterns(
                memory_pb2.BatchStorePatternsRequest(requests=[store(pattern("b", "batched"))]),
                timeout=5,
            )
            assert batch.results[0].code == grpc.StatusCode.UNAVAILABLE.value[0]

            server.start()  # The same port and directory: the data is still there.
            assert await readiness.next() == SERVING
            readiness.cancel()
            stored = await stub.StorePattern(store(pattern("after", "stored after it")), timeout=5)
            assert not stored.deduped
            found = await stub.SearchPatterns(search("stored"), timeout=5)
            assert sorted(result.pattern.id for result in found.results) == ["after", "before"]


async def test_a_redis_that_lost_its_data_is_noticed_and_the_cache_rebuilt(
    tmp_path: Path, key_prefix: str
) -> None:
    with standalone(tmp_path / "redis", persistent=False) as server:
        async with memory_on(tmp_path, server, key_prefix) as running:
            stub = running.memory_stub()
            readiness = Readiness(running.channels[-1])
            assert await readiness.next() == SERVING
            await stub.StorePattern(store(pattern("lost", "written before the flush")), timeout=5)
            assert len((await stub.SearchPatterns(search("flush"), timeout=5)).results) == 1

            server.restart()  # Without persistence: Redis comes back empty.
            readiness.cancel()
            # The very next read notices (the namespace's epoch is gone), and the
            # cache stops answering with what Redis no longer has.
            assert len((await stub.SearchPatterns(search("flush"), timeout=5)).results) == 0
            listed = await stub.ListPatterns(
                memory_pb2.ListPatternsRequest(namespace=NS), timeout=5
            )
            assert listed.total_size == 0
            stored = await stub.StorePattern(store(pattern("lost", "written again")), timeout=5)
            assert not stored.deduped


async def test_a_store_opened_while_redis_is_down_serves_once_it_answers(
    tmp_path: Path, key_prefix: str
) -> None:
    server = RedisServer(tmp_path / "redis", password="hunter2")  # noqa: S106 - a test's own.
    url = f"redis://:hunter2@127.0.0.1:{server.start().port}/0"
    server.stop()
    options = RedisOptions(url=url, key_prefix=key_prefix, timeout_seconds=0.5, retries=1)
    store = RedisStore(tmp_path / "replica", options, Keyring({}, None))
    await store.open()  # Does not fail: the service starts NOT_SERVING instead.
    try:
        assert not await store.ping()
        calls = [
            store.put(NS, pattern("p-1", "x"), False),
            store.get(NS, "p-1", viewer=""),
            store.delete(NS, "p-1", viewer=""),
            store.search(ReadQuery(NS, [], None, 10), viewer=""),
            store.page(PageQuery(NS, None, [], 10, 0), viewer=""),
            store.count(NS, None, "", viewer=""),
            store.query_vocabulary(NS, viewer="alice"),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailableError) as raised:
                await call
            message = str(raised.value)
            assert f"Redis at redis://127.0.0.1:{server.port}/0" in message
            assert "hunter2" not in message  # Credentials never reach a message.

        server.start()
        await eventually(store.ping, lambda ready: ready, within=10, interval=0.02)
        stored = await store.put(NS, pattern("p-1", "stored once Redis answered"), False)
        assert not stored.deduped
        assert (await store.count(NS, None, "", viewer=""))[0] == 1
    finally:
        await store.close()
        server.stop()


# --- (b) replicas as processes sharing one Redis ---------------------------------------


@contextlib.contextmanager
def replicas(root: Path, count: int, **redis: str) -> Iterator[list[ServiceProcess]]:
    """`count` memory-service processes (not yet started) on one Redis, each with its
    own data directory and stderr log; all stopped on exit."""
    settings: dict[str, Any] = {"STORE": "redis", "READINESS_INTERVAL_SECONDS": "0.2", **redis}
    with contextlib.ExitStack() as logs:
        processes = []
        for index in range(count):
            directory = root / f"replica-{index}"
            directory.mkdir(parents=True, exist_ok=True)
            log = logs.enter_context((directory / "stderr.log").open("a"))
            processes.append(memory_process(directory, log=log, **settings))
        try:
            yield processes
        finally:
            for process in processes:
                try:
                    process.terminate(timeout=10)
                finally:
                    process.kill()


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_settings(request: pytest.FixtureRequest, key_prefix: str) -> dict[str, str]:
    """MEMORY_* settings naming the module's standalone server or cluster."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return {"REDIS_URL": server.url, "REDIS_KEY_PREFIX": key_prefix}
    running: RedisCluster = request.getfixturevalue("redis_cluster")
    return {"REDIS_CLUSTER_NODES": ",".join(running.nodes), "REDIS_KEY_PREFIX": key_prefix}


async def visible_everywhere(
    stubs: list[memory_pb2_grpc.MemoryServiceAsyncStub], pattern_id: str, present: bool
) -> None:
    """Every replica's reads, started now, agree on whether the pattern exists."""
    for stub in stubs:
        found = await stub.SearchPatterns(search("", f'id = "{pattern_id}"'), timeout=5)
        assert [r.pattern.id for r in found.results] == ([pattern_id] if present else [])
        listed = await stub.ListPatterns(
            memory_pb2.ListPatternsRequest(namespace=NS, filter=f'id = "{pattern_id}"'), timeout=5
        )
        assert [p.id for p in listed.patterns] == ([pattern_id] if present else [])
        if present:
            got = await stub.GetPattern(
                memory_pb2.GetPatternRequest(namespace=NS, pattern_id=pattern_id), timeout=5
            )
            assert got.pattern.id == pattern_id


async def test_every_replica_reads_what_any_replica_acknowledged(
    tmp_path: Path, redis_settings: dict[str, str]
) -> None:
    with replicas(tmp_path, 2, **redis_settings) as (first, second):
        await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
        async with (
            grpc.aio.insecure_channel(first.address) as one,
            grpc.aio.insecure_channel(second.address) as two,
        ):
            stubs = [memory_pb2_grpc.MemoryServiceStub(one), memory_pb2_grpc.MemoryServiceStub(two)]
            counter = itertools.count()

            async def writer(name: str, rounds: int) -> list[str]:
                written = []
                for _ in range(rounds):
                    number = next(counter)
                    pattern_id = f"{name}-{number}"
                    via = stubs[number % 2]
                    await via.StorePattern(
                        store(pattern(pattern_id, f"concurrent write {number}", 60 + number)),
                        timeout=5,
                    )
                    await visible_everywhere(stubs, pattern_id, True)
                    written.append(pattern_id)
                return written

            batches = await asyncio.gather(*(writer(f"w{n}", 6) for n in range(4)))
            written = sorted(itertools.chain.from_iterable(batches))
            for stub in stubs:
                listed = await stub.ListPatterns(
                    memory_pb2.ListPatternsRequest(namespace=NS, order_by="id", page_size=100),
                    timeout=5,
                )
                assert [p.id for p in listed.patterns] == written
                counted = await stub.CountPatterns(
                    memory_pb2.CountPatternsRequest(
                        namespace=NS, filter="form_responses.test_coverage_required >= 80"
                    ),
                    timeout=5,
                )
                assert counted.total_count == sum(1 for n in range(24) if 60 + n >= 80)

            async def remove(pattern_id: str, index: int) -> None:
                await stubs[index % 2].DeletePattern(
                    memory_pb2.DeletePatternRequest(namespace=NS, pattern_id=pattern_id),
                    timeout=5,
                )
                await visible_everywhere(stubs, pattern_id, False)

            removed = written[::3]
            await asyncio.gather(*(remove(pid, i) for i, pid in enumerate(removed)))
            kept = [pid for pid in written if pid not in removed]

        # A replica restarted over its old cache, and a new one with none, both
        # serve complete results as soon as they are SERVING.
        first.terminate()
        await asyncio.to_thread(first.start)
        with replicas(tmp_path / "late", 1, **redis_settings) as (late,):
            await asyncio.to_thread(late.start)
            for process in (first, late):
                async with grpc.aio.insecure_channel(process.address) as channel:
                    stub = memory_pb2_grpc.MemoryServiceStub(channel)
                    listed = await stub.ListPatterns(
                        memory_pb2.ListPatternsRequest(namespace=NS, order_by="id"), timeout=5
                    )
                    assert [p.id for p in listed.patterns] == kept
                    found = await stub.SearchPatterns(search("concurrent"), timeout=5)
                    assert found.total_size == len(kept)


# --- a cluster node goes away ----------------------------------------------------------


async def test_a_cluster_node_outage_affects_only_the_namespaces_it_holds(
    tmp_path: Path, redis_cluster: RedisCluster, key_prefix: str
) -> None:
    options = RedisOptions(
        cluster_nodes=tuple(redis_cluster.nodes),
        key_prefix=key_prefix,
        timeout_seconds=0.5,
        retries=1,
    )
    store = RedisStore(tmp_path / "replica", options, Keyring({}, None))
    await store.open()
    try:
        namespaces = [f"ns-{index}" for index in range(12)]
        for namespace in namespaces:
            await store.put(namespace, pattern("p-1", "before the outage"), False)
        # The node holding the first namespace, and every namespace it holds.
        node = next(
            server
            for server in redis_cluster.servers
            if command(server.port, "EXISTS", f"{key_prefix}:{{ns-0}}:epoch") == b":1\r\n"
        )
        held = [
            namespace
            for namespace in namespaces
            if command(node.port, "EXISTS", f"{key_prefix}:{{{namespace}}}:epoch") == b":1\r\n"
        ]
        elsewhere = [namespace for namespace in namespaces if namespace not in held]
        assert held
        assert elsewhere

        node.stop()
        assert not await store.ping()
        for namespace in held:
            with pytest.raises(StoreUnavailableError, match="unavailable while"):
                await store.page(PageQuery(namespace, None, [], 10, 0), viewer="")
        for namespace in elsewhere:
            _, total = await store.page(PageQuery(namespace, None, [], 10, 0), viewer="")
            assert total == 1

        node.start()  # Without persistence: it comes back empty, owning its slots.
        await eventually(store.ping, lambda ready: ready, within=20, interval=0.05)
        for namespace in held:
            await store.put(namespace, pattern("p-2", "after the outage"), False)
            patterns, _ = await store.page(
                PageQuery(namespace, None, [("id", False)], 10, 0), viewer=""
            )
            assert [p.id for p in patterns] == ["p-2"]  # p-1 went with the node's data.
        for namespace in elsewhere:
            assert (await store.count(namespace, None, "", viewer=""))[0] == 1
    finally:
        await store.close()
