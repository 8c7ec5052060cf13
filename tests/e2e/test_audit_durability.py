"""An acknowledged write has its audit record on disk (or in Redis) before the reply.

A memory service process takes concurrent stores; it is SIGKILLed the moment
the last acknowledgement arrives, and every acknowledged pattern id must then
have its audit record: what a killed process had only queued is gone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import grpc
import redis as redis_py

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.dev.stack import ServiceProcess, memory_process
from tests.support.redis_servers import RedisServer, standalone

ROUNDS = 4  # start, store, kill: each round is one more chance to catch a loss
WAVES = 3
PER_WAVE = 64
KILL_AFTER = 8  # acknowledgements of the last wave


def store(index: int) -> memory_pb2.StorePatternRequest:
    return memory_pb2.StorePatternRequest(
        namespace="audited",
        pattern=memory_pb2.Pattern(
            id=f"p-{index}",
            type=memory_pb2.PATTERN_TYPE_INSIGHT,
            content=f"insight number {index}",
        ),
    )


async def store_then_kill(memory: ServiceProcess, first: int) -> set[str]:
    """Stores in concurrent waves; SIGKILLs the service on the last wave's first acks.

    The kill lands while the last wave's replies are still going out: the
    window in which a record that was only queued would be lost.
    """
    acknowledged: set[str] = set()
    async with grpc.aio.insecure_channel(memory.address) as channel:
        stub = memory_pb2_grpc.MemoryServiceStub(channel)
        for wave in range(WAVES):
            calls = [
                asyncio.ensure_future(
                    stub.StorePattern(store(first + wave * PER_WAVE + i), timeout=30)
                )
                for i in range(PER_WAVE)
            ]
            if wave < WAVES - 1:
                acknowledged.update(reply.pattern.id for reply in await asyncio.gather(*calls))
                continue
            for next_reply in asyncio.as_completed(calls):
                acknowledged.add((await next_reply).pattern.id)
                if len(acknowledged) >= (WAVES - 1) * PER_WAVE + KILL_AFTER:
                    memory.kill()  # At once: no shutdown, no flush.
                    break
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
    return acknowledged


def kill_rounds(memory: ServiceProcess) -> set[str]:
    """ROUNDS of start, stores, SIGKILL on the same data; every id acknowledged."""
    acknowledged: set[str] = set()
    try:
        for round_number in range(ROUNDS):
            memory.restart() if round_number else memory.start()
            acked = asyncio.run(store_then_kill(memory, round_number * WAVES * PER_WAVE))
            assert len(acked) >= (WAVES - 1) * PER_WAVE + KILL_AFTER
            acknowledged |= acked
    finally:
        memory.kill()
    return acknowledged


def stored_ids(records: Iterator[dict[str, object]]) -> set[str]:
    ids: set[str] = set()
    for record in records:
        if record.get("action") == "store" and record.get("outcome") == "OK":
            ids.update(str(i) for i in record.get("pattern_ids", []))  # type: ignore[attr-defined]
    return ids


def file_records(path: Path) -> Iterator[dict[str, object]]:
    for line in path.read_text().splitlines():
        if line.strip():
            yield json.loads(line)


def test_killed_file_audit_keeps_every_acknowledged_store(tmp_path: Path) -> None:
    with (tmp_path / "memory.log").open("w") as log:
        acknowledged = kill_rounds(memory_process(tmp_path, log=log))
    audited = stored_ids(file_records(tmp_path / "memory" / "audit.log"))
    assert acknowledged - audited == set()


def stream_records(redis: RedisServer, key: str) -> Iterator[dict[str, object]]:
    client = redis_py.Redis(host="127.0.0.1", port=redis.port)
    try:
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(key))
        for _, fields in entries:
            yield json.loads(fields[b"record"])
    finally:
        client.close()


def test_killed_redis_audit_keeps_every_acknowledged_store(tmp_path: Path) -> None:
    with (
        standalone(tmp_path / "redis") as redis_server,
        (tmp_path / "memory.log").open("w") as log,
    ):
        memory = memory_process(tmp_path, log=log, STORE="redis", REDIS_URL=redis_server.url)
        acknowledged = kill_rounds(memory)
        audited = stored_ids(stream_records(redis_server, "attune:audit"))
    assert acknowledged - audited == set()
