"""What the memory service holds of an executor's runs, read as a test checks it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from attune.memory.v1 import memory_pb2, memory_pb2_grpc

NAMESPACE = "default"


@asynccontextmanager
async def memory_stub(address: str) -> AsyncIterator[memory_pb2_grpc.MemoryServiceAsyncStub]:
    async with grpc.aio.insecure_channel(address) as channel:
        yield memory_pb2_grpc.MemoryServiceStub(channel)


async def stored_ids(memory: memory_pb2_grpc.MemoryServiceAsyncStub) -> list[str]:
    """Every pattern id of the namespace, page after page, duplicates kept."""
    ids: list[str] = []
    token = ""
    while True:
        page = await memory.ListPatterns(
            memory_pb2.ListPatternsRequest(namespace=NAMESPACE, page_size=100, page_token=token),
            timeout=10,
        )
        ids += [pattern.id for pattern in page.patterns]
        token = page.next_page_token
        if not token:
            return ids


async def assert_stored_exactly_once(address: str, run_ids: set[str]) -> None:
    """The memory service holds these runs' patterns, each once, and nothing else."""
    async with memory_stub(address) as memory:
        listed = await stored_ids(memory)
        assert len(listed) == len(set(listed)), "a pattern id is listed twice"
        assert set(listed) == run_ids, (
            f"missing {sorted(run_ids - set(listed))[:5]}, unexpected "
            f"{sorted(set(listed) - run_ids)[:5]}"
        )
        count = await memory.CountPatterns(
            memory_pb2.CountPatternsRequest(namespace=NAMESPACE), timeout=10
        )
        assert count.total_count == len(run_ids)
        # Each id answers on its own, as the run it came from.
        fetched = await asyncio.gather(
            *(
                memory.GetPattern(
                    memory_pb2.GetPatternRequest(namespace=NAMESPACE, pattern_id=run_id),
                    timeout=10,
                )
                for run_id in sorted(run_ids)
            )
        )
        assert [answer.pattern.run_id for answer in fetched] == sorted(run_ids)
