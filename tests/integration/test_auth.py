"""Authentication, authorization and tenancy on every memory RPC, over a real server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_status import rpc_status

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from memory_service.server import ConfigurationError
from tests.support.secured_memory import (
    TEAM_A,
    TEAM_B,
    SecuredMemory,
    insight,
    secured_memory,
)
from tests.support.stack import Stack

SENSITIVE = common_pb2.CLASSIFICATION_SENSITIVE
Call = Callable[["memory_pb2_grpc.MemoryServiceAsyncStub", Any], Awaitable[Any]]


async def _set_then_promote(stub: memory_pb2_grpc.MemoryServiceAsyncStub, metadata: Any) -> Any:
    """Promotes an entry of the caller's own (a context entry is its owner's alone)."""
    with contextlib.suppress(grpc.aio.AioRpcError):  # A caller who may not write.
        await stub.SetContext(
            memory_pb2.SetContextRequest(namespace=TEAM_A, session_id="own", key="k", value="v"),
            metadata=metadata,
        )
    return await stub.PromoteContext(
        memory_pb2.PromoteContextRequest(
            namespace=TEAM_A, session_id="own", key="k", pattern_id="p-promoted"
        ),
        metadata=metadata,
    )


# One valid call of every RPC on TEAM_A, and the role it needs.
CALLS: dict[str, tuple[str, Call]] = {
    "StorePattern": ("writer", lambda s, m: s.StorePattern(insight("p-any", "x"), metadata=m)),
    "BatchStorePatterns": (
        "writer",
        lambda s, m: s.BatchStorePatterns(
            memory_pb2.BatchStorePatternsRequest(requests=[insight("p-batch", "x")]), metadata=m
        ),
    ),
    "GetPattern": (
        "reader",
        lambda s, m: s.GetPattern(
            memory_pb2.GetPatternRequest(namespace=TEAM_A, pattern_id="p-seed"), metadata=m
        ),
    ),
    "DeletePattern": (
        "writer",
        lambda s, m: s.DeletePattern(
            memory_pb2.DeletePatternRequest(
                namespace=TEAM_A, pattern_id="p-none", allow_missing=True
            ),
            metadata=m,
        ),
    ),
    "ListPatterns": (
        "reader",
        lambda s, m: s.ListPatterns(memory_pb2.ListPatternsRequest(namespace=TEAM_A), metadata=m),
    ),
    "SearchPatterns": (
        "reader",
        lambda s, m: s.SearchPatterns(
            memory_pb2.SearchPatternsRequest(namespace=TEAM_A, query="seed"), metadata=m
        ),
    ),
    "CountPatterns": (
        "reader",
        lambda s, m: s.CountPatterns(memory_pb2.CountPatternsRequest(namespace=TEAM_A), metadata=m),
    ),
    "SetContext": (
        "writer",
        lambda s, m: s.SetContext(
            memory_pb2.SetContextRequest(namespace=TEAM_A, session_id="s", key="k", value="v"),
            metadata=m,
        ),
    ),
    "GetContext": (
        "reader",
        lambda s, m: s.GetContext(
            memory_pb2.GetContextRequest(namespace=TEAM_A, session_id="s"), metadata=m
        ),
    ),
    "DeleteContext": (
        "writer",
        lambda s, m: s.DeleteContext(
            memory_pb2.DeleteContextRequest(namespace=TEAM_A, session_id="s"), metadata=m
        ),
    ),
    "PromoteContext": ("writer", lambda s, m: _set_then_promote(s, m)),
    "ListAuditEvents": (
        "admin",
        lambda s, m: s.ListAuditEvents(
            memory_pb2.ListAuditEventsRequest(namespace=TEAM_A), metadata=m
        ),
    ),
}
ROLE_USERS = {"reader": "carol", "writer": "alice", "admin": "team-a-admin"}
RANK = {"reader": 0, "writer": 1, "admin": 2}


@pytest.fixture
async def memory(tmp_path: Path) -> AsyncIterator[SecuredMemory]:
    async with secured_memory(tmp_path) as running:
        stub = running.stub()
        await stub.StorePattern(insight("p-seed", "seed insight"), metadata=running.auth("alice"))
        await stub.SetContext(
            memory_pb2.SetContextRequest(
                namespace=TEAM_A, session_id="seed-session", key="k", value="remember this"
            ),
            metadata=running.auth("alice"),
        )
        yield running


CODES = {code.value[0]: code for code in grpc.StatusCode}


async def _code(call: Awaitable[Any]) -> grpc.StatusCode:
    """The call's status; for a batch, its first failing item's."""
    try:
        response = await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    failed = [r.code for r in getattr(response, "results", ()) if hasattr(r, "code") and r.code]
    return CODES[failed[0]] if failed else grpc.StatusCode.OK


@pytest.mark.parametrize("rpc", sorted(CALLS))
async def test_every_rpc_needs_a_known_token(memory: SecuredMemory, rpc: str) -> None:
    stub = memory.stub()
    _, call = CALLS[rpc]
    assert await _code(call(stub, ())) == grpc.StatusCode.UNAUTHENTICATED
    forged = (("authorization", "Bearer " + "A" * 32),)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(stub, forged)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "A" * 16 not in (caught.value.details() or ""), "the token is never echoed"


@pytest.mark.parametrize("rpc", sorted(CALLS))
async def test_every_rpc_checks_role_and_namespace(memory: SecuredMemory, rpc: str) -> None:
    stub = memory.stub()
    needed, call = CALLS[rpc]
    for role, user in ROLE_USERS.items():
        expected_ok = RANK[role] >= RANK[needed]
        code = await _code(call(stub, memory.auth(user)))
        if expected_ok:
            assert code == grpc.StatusCode.OK, (role, code)
        else:
            assert code == grpc.StatusCode.PERMISSION_DENIED, (role, code)
    # dave writes team-b only: team-a is not his, whatever his role allows.
    assert await _code(call(stub, memory.auth("dave"))) == grpc.StatusCode.PERMISSION_DENIED


async def test_permission_denied_names_user_namespace_and_reason(memory: SecuredMemory) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await memory.stub().StorePattern(
            insight("p1", "x", namespace=TEAM_A), metadata=memory.auth("dave")
        )
    error = caught.value
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "dave" in (error.details() or "")
    assert TEAM_A in (error.details() or "")
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    assert status.details, "google.rpc details are attached"


async def test_batch_items_are_authorized_one_by_one(memory: SecuredMemory) -> None:
    response = await memory.stub().BatchStorePatterns(
        memory_pb2.BatchStorePatternsRequest(
            requests=[insight("ok-a", "fine"), insight("no-b", "not mine", namespace=TEAM_B)]
        ),
        metadata=memory.auth("alice"),
    )
    codes = [grpc.StatusCode.OK.value[0], grpc.StatusCode.PERMISSION_DENIED.value[0]]
    assert [result.code for result in response.results] == codes
    # Each item is audited in its own namespace with its own outcome.
    events = await memory.stub().ListAuditEvents(
        memory_pb2.ListAuditEventsRequest(filter='principal = "alice" AND action = STORE'),
        metadata=memory.auth("root"),
    )
    seen = {(e.namespace, tuple(e.pattern_ids), e.outcome) for e in events.events}
    assert (TEAM_A, ("ok-a",), "OK") in seen
    assert (TEAM_B, ("no-b",), "PERMISSION_DENIED") in seen


async def test_audit_admin_of_one_namespace_cannot_read_every_namespace(
    memory: SecuredMemory,
) -> None:
    stub = memory.stub()
    everything = memory_pb2.ListAuditEventsRequest()
    assert (
        await _code(stub.ListAuditEvents(everything, metadata=memory.auth("team-a-admin")))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert await _code(stub.ListAuditEvents(everything, metadata=memory.auth("root"))) == (
        grpc.StatusCode.OK
    )


async def test_audit_records_allowed_and_denied_calls_with_the_principal(
    memory: SecuredMemory,
) -> None:
    stub = memory.stub()
    await stub.GetPattern(
        memory_pb2.GetPatternRequest(namespace=TEAM_A, pattern_id="p-seed"),
        metadata=memory.auth("carol"),
    )
    await _code(stub.StorePattern(insight("p-x", "x"), metadata=memory.auth("carol")))
    await _code(stub.StorePattern(insight("p-x", "x"), metadata=()))
    events = (
        await stub.ListAuditEvents(
            memory_pb2.ListAuditEventsRequest(page_size=100), metadata=memory.auth("root")
        )
    ).events
    seen = {(e.principal, e.action, e.outcome) for e in events}
    assert ("carol", "get", "OK") in seen
    assert ("carol", "store", "PERMISSION_DENIED") in seen
    assert ("", "store", "UNAUTHENTICATED") in seen
    assert ("alice", "store", "OK") in seen
    denied = await stub.ListAuditEvents(
        memory_pb2.ListAuditEventsRequest(
            filter='outcome = PERMISSION_DENIED AND principal = "carol"'
        ),
        metadata=memory.auth("root"),
    )
    assert denied.events
    assert all(e.principal == "carol" for e in denied.events)


async def test_a_namespace_is_a_boundary_whatever_the_filter_says(memory: SecuredMemory) -> None:
    stub = memory.stub()
    await stub.StorePattern(
        insight("b-only", "seed insight from team b", namespace=TEAM_B),
        metadata=memory.auth("dave"),
    )
    root = memory.auth("root")
    # The namespace is not even a filterable field; ids and text of team-b stay out.
    # team-a holds one pattern, p-seed: each filter's exact count says no more leaked in.
    expected = {"": 1, 'id = "b-only"': 0, 'id = "b-only" OR id = "p-seed"': 1}
    expected['content : "team b"'] = 0
    for text, count in expected.items():
        listed = await stub.ListPatterns(
            memory_pb2.ListPatternsRequest(namespace=TEAM_A, filter=text), metadata=root
        )
        assert [p.namespace for p in listed.patterns] == [TEAM_A] * count, text
        found = await stub.SearchPatterns(
            memory_pb2.SearchPatternsRequest(namespace=TEAM_A, query="seed", filter=text),
            metadata=root,
        )
        assert all(r.pattern.namespace == TEAM_A for r in found.results), text
        assert len(found.results) <= count, text
        counted = await stub.CountPatterns(
            memory_pb2.CountPatternsRequest(namespace=TEAM_A, filter=text), metadata=root
        )
        assert counted.total_count == count, text
    missing = await _code(
        stub.GetPattern(
            memory_pb2.GetPatternRequest(namespace=TEAM_A, pattern_id="b-only"), metadata=root
        )
    )
    assert missing == grpc.StatusCode.NOT_FOUND
    empty = await _code(stub.ListPatterns(memory_pb2.ListPatternsRequest(), metadata=root))
    assert empty == grpc.StatusCode.INVALID_ARGUMENT, "an empty namespace is not 'all'"


async def test_sensitive_patterns_are_visible_only_to_their_owner(memory: SecuredMemory) -> None:
    stub = memory.stub()
    alice, bob = memory.auth("alice"), memory.auth("bob")
    stored = await stub.StorePattern(
        insight("secret-plan", "quarterly zebracorn plan", classification=SENSITIVE),
        metadata=alice,
    )
    assert stored.pattern.owner == "alice"
    get = memory_pb2.GetPatternRequest(namespace=TEAM_A, pattern_id="secret-plan")
    assert (await stub.GetPattern(get, metadata=alice)).pattern.content == (
        "quarterly zebracorn plan"
    )
    assert await _code(stub.GetPattern(get, metadata=bob)) == grpc.StatusCode.NOT_FOUND
    for user, expected in (("alice", 1), ("bob", 0), ("root", 0)):
        metadata = memory.auth(user)
        search = await stub.SearchPatterns(
            memory_pb2.SearchPatternsRequest(namespace=TEAM_A, query="zebracorn"),
            metadata=metadata,
        )
        assert len(search.results) == expected, user
        fuzzy = await stub.SearchPatterns(
            memory_pb2.SearchPatternsRequest(namespace=TEAM_A, query="zebracorm", explain=True),
            metadata=metadata,
        )
        notes = [n for r in fuzzy.results for n in r.explanation.fuzzy_expansions]
        assert len(fuzzy.results) == expected, user
        assert expected or not notes, f"{user} sees no correction from another's words"
        listed = await stub.ListPatterns(
            memory_pb2.ListPatternsRequest(namespace=TEAM_A, filter='id = "secret-plan"'),
            metadata=metadata,
        )
        assert len(listed.patterns) == expected, user
        counted = await stub.CountPatterns(
            memory_pb2.CountPatternsRequest(namespace=TEAM_A, filter='id = "secret-plan"'),
            metadata=metadata,
        )
        assert counted.total_count == expected, user
    # bob can neither delete it nor overwrite it, and learns nothing of it, not
    # even that the id is taken: his writes under it are his own (ids of
    # SENSITIVE patterns are per owner).
    delete = memory_pb2.DeletePatternRequest(namespace=TEAM_A, pattern_id="secret-plan")
    assert await _code(stub.DeletePattern(delete, metadata=bob)) == grpc.StatusCode.NOT_FOUND
    same = insight("secret-plan", "quarterly zebracorn plan", classification=SENSITIVE)
    assert not (await stub.StorePattern(same, metadata=bob)).replaced
    overwrite = insight("secret-plan", "mine now")
    overwrite.replace = True
    assert (await stub.StorePattern(overwrite, metadata=bob)).replaced  # His own one.
    assert (await stub.GetPattern(get, metadata=alice)).pattern.content == (
        "quarterly zebracorn plan"
    )
    assert (await stub.GetPattern(get, metadata=bob)).pattern.content == "mine now"
    assert (await stub.DeletePattern(delete, metadata=alice)).deleted
    assert (await stub.GetPattern(get, metadata=alice)).pattern.content == "mine now"


async def test_start_refuses_without_an_authentication_choice(tmp_path: Path) -> None:
    stack = Stack(tmp_path, memory_overrides={"auth_disabled": False})
    with pytest.raises(ConfigurationError, match="MEMORY_TOKENS_FILE"):
        await stack.start_memory()


async def test_start_refuses_sensitive_data_without_its_key(tmp_path: Path) -> None:
    async with secured_memory(tmp_path) as running:
        await running.stub().StorePattern(
            insight("s1", "private", classification=SENSITIVE), metadata=running.auth("alice")
        )
    stack = Stack(tmp_path, memory_overrides={"encryption_keys": None})
    with pytest.raises(ConfigurationError, match="MEMORY_ENCRYPTION_KEYS"):
        await stack.start_memory()


async def test_storing_sensitive_without_a_key_is_a_failed_precondition(tmp_path: Path) -> None:
    async with secured_memory(tmp_path, encryption_keys=None) as running:
        code = await _code(
            running.stub().StorePattern(
                insight("s1", "private", classification=SENSITIVE),
                metadata=running.auth("alice"),
            )
        )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
