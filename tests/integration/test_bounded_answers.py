"""No writer can make an answer too large for its readers: context sessions
and counts stay within what a client accepts (issue 10, finding 6: review
follow-up on the context and count paths)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from attune.memory.v1 import memory_pb2
from memory_service.rpc.context import MAX_CONTEXT_ENTRIES
from memory_service.rpc.reads import MAX_GROUPS
from tests.support.secured_memory import TEAM_A, SecuredMemory, insight, secured_memory

CLIENT_LIMIT = 4 * 1024 * 1024  # What a gRPC client accepts by default.
BIG = "x" * 60_000


@pytest.fixture
async def memory(tmp_path: Path) -> AsyncIterator[SecuredMemory]:
    async with secured_memory(tmp_path) as running:
        yield running


def entry(key: str, value: str, shared: bool = False) -> memory_pb2.SetContextRequest:
    return memory_pb2.SetContextRequest(
        namespace=TEAM_A, session_id="s1", key=key, value=value, shared=shared
    )


async def test_others_shared_entries_cannot_make_a_session_unreadable(
    memory: SecuredMemory,
) -> None:
    stub = memory.stub()
    await stub.SetContext(entry("mine", "alice's own"), metadata=memory.auth("alice"))
    # Three principals fill the session with shared entries: over 5 MiB together.
    for user in ("bob", "root", "team-a-admin"):
        for n in range(MAX_CONTEXT_ENTRIES):
            await stub.SetContext(
                entry(f"{user}-{n}", BIG, shared=True), metadata=memory.auth(user)
            )
    got = await stub.GetContext(
        memory_pb2.GetContextRequest(namespace=TEAM_A, session_id="s1"),
        metadata=memory.auth("alice"),
    )
    assert got.truncated
    assert got.ByteSize() < CLIENT_LIMIT
    assert got.entries[0].key == "mine"  # Her own entry is never crowded out.
    assert len(got.entries) > MAX_CONTEXT_ENTRIES  # Most of the rest still fit.
    # A key asked for by name is always served.
    one = await stub.GetContext(
        memory_pb2.GetContextRequest(namespace=TEAM_A, session_id="s1", key="root-31"),
        metadata=memory.auth("alice"),
    )
    assert [e.key for e in one.entries] == ["root-31"]
    assert not one.truncated


async def test_a_principal_keeps_a_bounded_number_of_entries_per_session(
    memory: SecuredMemory,
) -> None:
    stub = memory.stub()
    for n in range(MAX_CONTEXT_ENTRIES):
        await stub.SetContext(entry(f"k{n}", "v"), metadata=memory.auth("alice"))
    with pytest.raises(grpc.aio.AioRpcError) as full:
        await stub.SetContext(entry("one-more", "v"), metadata=memory.auth("alice"))
    assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Replacing an entry she holds is fine, and so is another principal's entry.
    await stub.SetContext(entry("k0", "new value"), metadata=memory.auth("alice"))
    await stub.SetContext(entry("one-more", "v"), metadata=memory.auth("bob"))


async def test_counting_many_groups_answers_the_largest(memory: SecuredMemory) -> None:
    stub = memory.stub()
    requests = [
        insight(f"p{n}", "tagged", tags=[f"t{n}-{k}" for k in range(60)]) for n in range(20)
    ]
    requests.append(insight("common", "tagged", tags=["shared-tag", "t0-0"]))
    stored = await stub.BatchStorePatterns(
        memory_pb2.BatchStorePatternsRequest(requests=requests), metadata=memory.auth("alice")
    )
    assert all(result.code == 0 for result in stored.results)
    counted = await stub.CountPatterns(
        memory_pb2.CountPatternsRequest(namespace=TEAM_A, group_by="tags"),
        metadata=memory.auth("alice"),
    )
    assert counted.total_count == 21
    assert counted.truncated
    assert len(counted.groups) == MAX_GROUPS
    assert (counted.groups[0].key, counted.groups[0].count) == ("t0-0", 2)
    few = await stub.CountPatterns(
        memory_pb2.CountPatternsRequest(namespace=TEAM_A, group_by="template_id"),
        metadata=memory.auth("alice"),
    )
    assert not few.truncated
