"""Short-term context over gRPC: TTL defaults and caps, limits, promotion."""

from __future__ import annotations

import grpc
import pytest

from attune.memory.v1 import memory_pb2
from tests.support.helpers import violations_of
from tests.support.stack import Stack

NS = "ctx"


def set_request(key: str = "answers", value: str = '{"x": 1}') -> memory_pb2.SetContextRequest:
    return memory_pb2.SetContextRequest(namespace=NS, session_id="s1", key=key, value=value)


async def test_ttl_defaults_and_is_capped(stack: Stack) -> None:
    stub = stack.memory_stub()
    default = await stub.SetContext(set_request(), timeout=5)
    lifetime = default.entry.expire_time.ToSeconds() - default.entry.update_time.ToSeconds()
    assert lifetime == pytest.approx(3600, abs=1)
    long = set_request("long")
    long.ttl.FromSeconds(10 * 86400)
    capped = await stub.SetContext(long, timeout=5)
    lifetime = capped.entry.expire_time.ToSeconds() - capped.entry.update_time.ToSeconds()
    assert lifetime == pytest.approx(86400, abs=1)
    read = await stub.GetContext(
        memory_pb2.GetContextRequest(namespace=NS, session_id="s1"), timeout=5
    )
    assert [entry.key for entry in read.entries] == ["answers", "long"]


async def test_bad_context_requests_name_their_fields(stack: Stack) -> None:
    stub = stack.memory_stub()
    bad = memory_pb2.SetContextRequest(namespace="", session_id="", key="", value="x" * 70_000)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.SetContext(bad, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"namespace", "session_id", "key"} <= set(violations_of(raised.value))
    negative = set_request()
    negative.ttl.FromSeconds(-5)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.SetContext(negative, timeout=5)
    assert "ttl" in violations_of(raised.value)


async def test_promotion_stores_a_pattern_through_the_write_path(stack: Stack) -> None:
    stub = stack.memory_stub()
    await stub.SetContext(set_request(value="prefer premium for security audits"), timeout=5)
    promote = memory_pb2.PromoteContextRequest(
        namespace=NS, session_id="s1", key="answers", pattern_id="promoted-1", tags=["tip"]
    )
    promoted = await stub.PromoteContext(promote, timeout=5)
    assert not promoted.store.deduped
    again = await stub.PromoteContext(promote, timeout=5)
    assert again.store.deduped
    stored = await stub.GetPattern(
        memory_pb2.GetPatternRequest(namespace=NS, pattern_id="promoted-1"), timeout=5
    )
    assert stored.pattern.type == memory_pb2.PATTERN_TYPE_PROMOTED_CONTEXT
    assert stored.pattern.content == "prefer premium for security audits"
    found = await stub.SearchPatterns(
        # Quoted: unquoted, "security audits" names the template (a filter).
        memory_pb2.SearchPatternsRequest(namespace=NS, query='"security audits"'),
        timeout=5,
    )
    assert [result.pattern.id for result in found.results] == ["promoted-1"]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.PromoteContext(
            memory_pb2.PromoteContextRequest(
                namespace=NS, session_id="s1", key="missing", pattern_id="p2"
            ),
            timeout=5,
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_delete_one_or_all(stack: Stack) -> None:
    stub = stack.memory_stub()
    for key in ("a", "b", "c"):
        await stub.SetContext(set_request(key), timeout=5)
    one = await stub.DeleteContext(
        memory_pb2.DeleteContextRequest(namespace=NS, session_id="s1", key="a"), timeout=5
    )
    assert one.deleted_count == 1
    rest = await stub.DeleteContext(
        memory_pb2.DeleteContextRequest(namespace=NS, session_id="s1"), timeout=5
    )
    assert rest.deleted_count == 2
