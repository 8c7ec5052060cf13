"""Context entries between users of one namespace, over a real server (embedded and Redis).

alice and bob write team-a, carol reads it. A private entry is its owner's
alone: to anyone else it answers as a missing entry does. A shared entry is
read by every reader and changed only by its owner, with PII scrubbed.
"""

from __future__ import annotations

import grpc
import pytest

from attune.memory.v1 import memory_pb2
from tests.support.secured_memory import TEAM_A, SecuredMemory

PII = "mail jane.doe@example.com or call (650) 253-0000"


@pytest.fixture
def memory(secured_memory_each_backend: SecuredMemory) -> SecuredMemory:
    """The secured memory service, once per backend."""
    return secured_memory_each_backend


def setting(
    key: str = "answers", value: str = PII, session: str = "s1", shared: bool = False
) -> memory_pb2.SetContextRequest:
    request = memory_pb2.SetContextRequest(
        namespace=TEAM_A, session_id=session, key=key, value=value
    )
    if shared:
        request.shared = True
    return request


def reading(key: str = "", session: str = "s1") -> memory_pb2.GetContextRequest:
    return memory_pb2.GetContextRequest(namespace=TEAM_A, session_id=session, key=key)


def promoting(
    key: str = "answers", pattern_id: str = "promoted"
) -> memory_pb2.PromoteContextRequest:
    return memory_pb2.PromoteContextRequest(
        namespace=TEAM_A, session_id="s1", key=key, pattern_id=pattern_id
    )


async def test_another_users_private_entry_answers_as_a_missing_one(
    memory: SecuredMemory,
) -> None:
    stub = memory.stub()
    alice, bob, carol = memory.auth("alice"), memory.auth("bob"), memory.auth("carol")
    stored = await stub.SetContext(setting(), metadata=alice)
    assert stored.entry.value == PII  # Private: kept as given, for its writer.

    never_set = await stub.GetContext(reading(session="never-set"), metadata=bob)
    for user in (bob, carol):
        assert await stub.GetContext(reading(), metadata=user) == never_set
        assert await stub.GetContext(reading("answers"), metadata=user) == never_set
    with pytest.raises(grpc.aio.AioRpcError) as promoted:
        await stub.PromoteContext(promoting(), metadata=bob)
    assert promoted.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.PromoteContext(promoting("never-set"), metadata=bob)
    assert (promoted.value.details() or "").replace("answers", "never-set") == (
        missing.value.details()
    )

    deleted = await stub.DeleteContext(
        memory_pb2.DeleteContextRequest(namespace=TEAM_A, session_id="s1"), metadata=bob
    )
    assert deleted.deleted_count == 0
    # bob's write is his own entry; alice's is untouched.
    await stub.SetContext(setting(value="bob's answers"), metadata=bob)
    assert [e.value for e in (await stub.GetContext(reading(), metadata=alice)).entries] == [PII]
    assert [e.value for e in (await stub.GetContext(reading(), metadata=bob)).entries] == [
        "bob's answers"
    ]
    # Only the owner promotes it.
    promoted_by_alice = await stub.PromoteContext(promoting(), metadata=alice)
    assert promoted_by_alice.store.pattern.owner == "alice"
    assert "jane.doe" not in promoted_by_alice.store.pattern.content
    assert not stored.entry.shared
    assert not stored.scrubbed


async def test_a_shared_entry_is_read_by_all_and_changed_by_its_owner(
    memory: SecuredMemory,
) -> None:
    stub = memory.stub()
    alice, bob, carol = memory.auth("alice"), memory.auth("bob"), memory.auth("carol")
    stored = await stub.SetContext(setting("plan", shared=True), metadata=alice)
    assert stored.entry.shared
    assert "jane.doe@example.com" not in stored.entry.value  # Others read it: scrubbed.
    assert {count.kind for count in stored.scrubbed} >= {"email"}

    seen = (await stub.GetContext(reading(), metadata=carol)).entries
    assert [(e.key, e.value, e.shared) for e in seen] == [("plan", stored.entry.value, True)]

    for call in (
        stub.SetContext(setting("plan", "bob's plan", shared=True), metadata=bob),
        stub.PromoteContext(promoting("plan"), metadata=bob),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    deleted = await stub.DeleteContext(
        memory_pb2.DeleteContextRequest(namespace=TEAM_A, session_id="s1", key="plan"),
        metadata=bob,
    )
    assert deleted.deleted_count == 0
    assert [e.value for e in (await stub.GetContext(reading(), metadata=carol)).entries] == [
        stored.entry.value
    ]
    # The owner changes and deletes it.
    await stub.SetContext(setting("plan", "second plan", shared=True), metadata=alice)
    assert [e.value for e in (await stub.GetContext(reading(), metadata=bob)).entries] == [
        "second plan"
    ]
    deleted = await stub.DeleteContext(
        memory_pb2.DeleteContextRequest(namespace=TEAM_A, session_id="s1"), metadata=alice
    )
    assert deleted.deleted_count == 1
    assert not (await stub.GetContext(reading(), metadata=carol)).entries
