"""The executor acting on behalf of a user, over a real memory service (embedded and Redis).

svc:executor's tokens-file entry says `delegate: true`; alice and bob are
ordinary writers of team-a. A call the executor makes with the header
`attune-on-behalf-of: alice` is alice's: she owns what it writes, it sees
what she may see, and the audit log names her, with the executor as
delegated_by. Without the header the executor is itself, and sees none of
her SENSITIVE patterns or private context. The executor's client is the real
MemoryClient, with the executor's own token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from pydantic import SecretStr

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from executor_service.memory.client import MemoryClient, choices_key, encode_choices
from memory_service.servicekit.errors import error_reasons
from tests.support.helpers import eventually
from tests.support.secured_memory import EXECUTOR, TEAM_A, SecuredMemory, insight

SENSITIVE = common_pb2.CLASSIFICATION_SENSITIVE
# Classified SENSITIVE by its words, whatever the writer asked for.
SECRET_PLAN = "confidential salary review for the payroll team"  # noqa: S105 - no secret
TEMPLATE = "python_package_publish"
CHOICES = encode_choices({"package_name": "acme", "has_tests": True}) or ""


@pytest.fixture
def memory(secured_memory_each_backend: SecuredMemory) -> SecuredMemory:
    """The secured memory service, once per backend."""
    return secured_memory_each_backend


def client_of(memory: SecuredMemory, user: str = EXECUTOR) -> MemoryClient:
    """The executor's memory client, carrying `user`'s token as its own."""
    token = SecretStr(memory.tokens[user])
    return MemoryClient(memory.stack.memory_address, TEAM_A, 10.0, token)


@pytest.fixture
async def executor(memory: SecuredMemory) -> AsyncIterator[MemoryClient]:
    """The executor's client, with the executor's token."""
    client = client_of(memory)
    try:
        yield client
    finally:
        await client.close()


def plan(pattern_id: str = "plan-1", owner: str = "") -> memory_pb2.Pattern:
    return memory_pb2.Pattern(
        id=pattern_id, type=memory_pb2.PATTERN_TYPE_INSIGHT, content=SECRET_PLAN, owner=owner
    )


async def found_ids(
    memory: SecuredMemory, metadata: tuple[tuple[str, str], ...], query: str = "salary"
) -> list[str]:
    response = await memory.stub().SearchPatterns(
        memory_pb2.SearchPatternsRequest(namespace=TEAM_A, query=query), metadata=metadata
    )
    return [result.pattern.id for result in response.results]


async def test_a_sensitive_pattern_stored_for_a_user_is_theirs_alone(
    memory: SecuredMemory, executor: MemoryClient
) -> None:
    # The executor puts the run's owner on the pattern; the store goes on her behalf.
    stored = await executor.store(plan(owner="alice"))
    assert stored.pattern.owner == "alice"
    assert stored.pattern.classification == SENSITIVE

    assert await found_ids(memory, memory.auth("alice")) == ["plan-1"]
    assert await found_ids(memory, memory.auth("bob")) == []
    assert await found_ids(memory, memory.auth(EXECUTOR)) == []  # Itself, no header.
    assert await found_ids(memory, memory.on_behalf_of("bob")) == []
    searched = await executor.search(
        memory_pb2.SearchPatternsRequest(query="salary"), on_behalf_of="alice"
    )
    assert [result.pattern.id for result in searched.results] == ["plan-1"]
    got = await memory.stub().GetPattern(
        memory_pb2.GetPatternRequest(namespace=TEAM_A, pattern_id="plan-1"),
        metadata=memory.auth("alice"),
    )
    assert got.pattern.content == SECRET_PLAN

    # The owner is output-only: the same write again, owner and all, is a dedupe.
    again = await executor.store(plan(owner="alice"))
    assert again.deduped
    # An explicit on_behalf_of wins over the pattern's owner field.
    bobs = await executor.store(plan("plan-2", owner="alice"), on_behalf_of="bob")
    assert bobs.pattern.owner == "bob"


async def test_a_store_without_an_owner_is_the_executors_own(
    memory: SecuredMemory, executor: MemoryClient
) -> None:
    stored = await executor.store(plan())
    assert stored.pattern.owner == EXECUTOR
    assert await found_ids(memory, memory.auth("alice")) == []


async def test_context_set_for_a_user_reads_back_only_as_that_user(
    memory: SecuredMemory, executor: MemoryClient
) -> None:
    response = await executor.remember("s-1", choices_key(TEMPLATE), CHOICES, on_behalf_of="alice")
    assert not response.entry.shared
    remembered = await executor.recent_choices("s-1", TEMPLATE, on_behalf_of="alice")
    assert remembered == {"package_name": "acme", "has_tests": True}
    assert await executor.recent_choices("s-1", TEMPLATE, on_behalf_of="bob") is None
    assert await executor.recent_choices("s-1", TEMPLATE) is None  # The executor itself.
    # Alice reads her entry with her own token; bob does not.
    reading = memory_pb2.GetContextRequest(namespace=TEAM_A, session_id="s-1")
    alices = await memory.stub().GetContext(reading, metadata=memory.auth("alice"))
    assert [entry.value for entry in alices.entries] == [CHOICES]
    bobs = await memory.stub().GetContext(reading, metadata=memory.auth("bob"))
    assert list(bobs.entries) == []


async def test_remembering_later_for_a_user_is_theirs(
    memory: SecuredMemory, executor: MemoryClient
) -> None:
    executor.remember_choices_later("s-2", TEMPLATE, {"package_name": "x"}, on_behalf_of="alice")
    choices = await eventually(
        lambda: executor.recent_choices("s-2", TEMPLATE, on_behalf_of="alice"), bool
    )
    assert choices == {"package_name": "x"}
    assert await executor.recent_choices("s-2", TEMPLATE) is None


async def test_a_shared_entry_planted_by_another_writer_is_never_a_suggestion(
    memory: SecuredMemory, executor: MemoryClient
) -> None:
    planted = memory_pb2.SetContextRequest(
        namespace=TEAM_A,
        session_id="s-3",
        key=choices_key(TEMPLATE),
        value=encode_choices({"package_name": "evil"}) or "",
        shared=True,
    )
    await memory.stub().SetContext(planted, metadata=memory.auth("bob"))
    assert await executor.recent_choices("s-3", TEMPLATE) is None
    assert await executor.recent_choices("s-3", TEMPLATE, on_behalf_of="alice") is None


async def test_a_principal_without_delegate_is_refused_and_audited_as_itself(
    memory: SecuredMemory,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await memory.stub().StorePattern(
            insight("forged", "a note"), metadata=memory.on_behalf_of("bob", caller="alice")
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reasons(caught.value) == ["DELEGATION_NOT_GRANTED"]
    assert "delegate: true" in (caught.value.details() or "")

    async def refusals() -> list[memory_pb2.AuditEvent]:
        listed = await memory.stub().ListAuditEvents(
            memory_pb2.ListAuditEventsRequest(filter="outcome = PERMISSION_DENIED"),
            metadata=memory.auth("root"),
        )
        return list(listed.events)

    [event] = await eventually(refusals, bool)
    assert (event.principal, event.delegated_by) == ("alice", "")


async def test_a_malformed_header_is_unauthenticated(memory: SecuredMemory) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await memory.stub().StorePattern(
            insight("bad", "a note"), metadata=memory.on_behalf_of("not a user id")
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reasons(caught.value) == ["MALFORMED_DELEGATION"]


async def test_the_audit_names_the_user_and_the_delegating_service(
    memory: SecuredMemory, executor: MemoryClient
) -> None:
    await executor.store(plan(owner="alice"))
    await executor.search(memory_pb2.SearchPatternsRequest(query="salary"), on_behalf_of="alice")
    await executor.store(insight("plan-own", "a plain release note").pattern)

    async def delegated() -> list[memory_pb2.AuditEvent]:
        listed = await memory.stub().ListAuditEvents(
            memory_pb2.ListAuditEventsRequest(
                namespace=TEAM_A, filter=f'delegated_by = "{EXECUTOR}"'
            ),
            metadata=memory.auth("team-a-admin"),
        )
        return list(listed.events)

    events = await eventually(delegated, lambda found: len(found) == 2)
    assert {(e.action, e.principal, e.delegated_by) for e in events} == {
        ("store", "alice", EXECUTOR),
        ("search", "alice", EXECUTOR),
    }
    # Alice is the principal: only she reads back her SENSITIVE pattern's id.
    [stored] = [e for e in events if e.action == "store"]
    assert list(stored.pattern_ids) == ["(sensitive)"]
    own = await memory.stub().ListAuditEvents(
        memory_pb2.ListAuditEventsRequest(namespace=TEAM_A, filter='pattern_ids:"plan-own"'),
        metadata=memory.auth("team-a-admin"),
    )
    assert [(e.principal, e.delegated_by) for e in own.events] == [(EXECUTOR, "")]


async def test_the_client_says_to_set_delegate_when_memory_refuses(
    memory: SecuredMemory,
) -> None:
    client = client_of(memory, "bob")  # An executor whose entry lacks `delegate: true`.
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.store(plan(owner="alice"))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "`delegate: true` on the executor's entry" in client.last_error
        assert "alice" not in client.last_error
    finally:
        await client.close()


async def test_an_undecodable_delegated_call_is_audited_as_the_user(
    memory: SecuredMemory,
) -> None:
    store: Any = memory.stack.channel(memory.stack.memory_port).unary_unary(
        "/attune.memory.v1.MemoryService/StorePattern"
    )  # No serializers: the bytes go out as they are.
    for metadata in (memory.on_behalf_of("alice"), memory.on_behalf_of("bob", caller="carol")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await store(b"\xff\xff\xff\xff\x0f\x00", metadata=metadata, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    async def undecodable() -> list[memory_pb2.AuditEvent]:
        listed = await memory.stub().ListAuditEvents(
            memory_pb2.ListAuditEventsRequest(filter="outcome = INVALID_ARGUMENT"),
            metadata=memory.auth("root"),
        )
        return list(listed.events)

    events = await eventually(undecodable, lambda found: len(found) == 2)
    # carol may not delegate: her call stays hers, as the gate records it.
    assert sorted((e.principal, e.delegated_by) for e in events) == [
        ("alice", EXECUTOR),
        ("carol", ""),
    ]
