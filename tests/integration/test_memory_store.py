"""The memory service's pattern writes: idempotent, validated, durable."""

from __future__ import annotations

import grpc
import pytest

from attune.memory.v1 import memory_pb2
from tests.support.helpers import violations_of
from tests.support.stack import Stack


def pattern(pattern_id: str = "p-1", content: str = "coverage gate for demo") -> memory_pb2.Pattern:
    return memory_pb2.Pattern(
        id=pattern_id,
        type=memory_pb2.PATTERN_TYPE_INSIGHT,
        content=content,
        tags=["demo"],
    )


def store(item: memory_pb2.Pattern, replace: bool = False) -> memory_pb2.StorePatternRequest:
    return memory_pb2.StorePatternRequest(namespace="team-a", pattern=item, replace=replace)


async def test_store_is_idempotent_on_the_pattern_id(stack: Stack) -> None:
    stub = stack.memory_stub()
    first = await stub.StorePattern(store(pattern()), timeout=5)
    again = await stub.StorePattern(store(pattern()), timeout=5)
    assert not first.deduped
    assert again.deduped
    assert again.pattern.store_time == first.pattern.store_time
    assert again.pattern.namespace == "team-a"


async def test_a_different_body_under_the_same_id_is_never_silently_dropped(stack: Stack) -> None:
    stub = stack.memory_stub()
    await stub.StorePattern(store(pattern()), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.StorePattern(store(pattern(content="something else")), timeout=5)
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "replace" in (raised.value.details() or "")
    replaced = await stub.StorePattern(store(pattern(content="something else"), True), timeout=5)
    assert replaced.replaced
    got = await stub.GetPattern(
        memory_pb2.GetPatternRequest(namespace="team-a", pattern_id="p-1"), timeout=5
    )
    assert got.pattern.content == "something else"


async def test_invalid_writes_list_every_violation(stack: Stack) -> None:
    bad = memory_pb2.Pattern(id="has space", content="x" * (256 * 1024 + 1), tags=[""])
    request = memory_pb2.StorePatternRequest(namespace="Bad Namespace", pattern=bad)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.memory_stub().StorePattern(request, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations_of(raised.value)) == {
        "namespace",
        "pattern.id",
        "pattern.type",
        "pattern.content",
        "pattern.tags[0]",
    }


async def test_metadata_depth_is_limited(stack: Stack) -> None:
    deep = pattern()
    level = deep.metadata
    for _ in range(9):
        level = level.fields["next"].struct_value
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.memory_stub().StorePattern(store(deep), timeout=5)
    assert "pattern.metadata" in violations_of(raised.value)


async def test_batch_reports_each_item(stack: Stack) -> None:
    stub = stack.memory_stub()
    request = memory_pb2.BatchStorePatternsRequest(
        requests=[store(pattern("a")), store(memory_pb2.Pattern(id="b")), store(pattern("a"))]
    )
    response = await stub.BatchStorePatterns(request, timeout=5)
    codes = [result.code for result in response.results]
    assert codes == [0, grpc.StatusCode.INVALID_ARGUMENT.value[0], 0]
    assert response.results[2].response.deduped
    assert "pattern.type" in response.results[1].message


async def test_oversized_batch_is_resource_exhausted(stack: Stack) -> None:
    request = memory_pb2.BatchStorePatternsRequest(
        requests=[store(pattern(f"p{i}")) for i in range(501)]
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.memory_stub().BatchStorePatterns(request, timeout=5)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "500" in (raised.value.details() or "")


async def test_delete_removes_pattern_and_search_entry(stack: Stack) -> None:
    stub = stack.memory_stub()
    await stub.StorePattern(store(pattern()), timeout=5)
    search = memory_pb2.SearchPatternsRequest(namespace="team-a", query="coverage")
    assert len((await stub.SearchPatterns(search, timeout=5)).results) == 1
    deleted = await stub.DeletePattern(
        memory_pb2.DeletePatternRequest(namespace="team-a", pattern_id="p-1"), timeout=5
    )
    assert deleted.deleted
    assert len((await stub.SearchPatterns(search, timeout=5)).results) == 0
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.DeletePattern(
            memory_pb2.DeletePatternRequest(namespace="team-a", pattern_id="p-1"), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    quiet = await stub.DeletePattern(
        memory_pb2.DeletePatternRequest(namespace="team-a", pattern_id="p-1", allow_missing=True),
        timeout=5,
    )
    assert not quiet.deleted


async def test_namespaces_do_not_see_each_other(stack: Stack) -> None:
    stub = stack.memory_stub()
    await stub.StorePattern(store(pattern()), timeout=5)
    other = memory_pb2.SearchPatternsRequest(namespace="team-b", query="coverage")
    assert len((await stub.SearchPatterns(other, timeout=5)).results) == 0
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetPattern(
            memory_pb2.GetPatternRequest(namespace="team-b", pattern_id="p-1"), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_patterns_survive_a_restart(stack: Stack) -> None:
    await stack.memory_stub().StorePattern(store(pattern()), timeout=5)
    await stack.stop_memory()
    await stack.start_memory()
    search = memory_pb2.SearchPatternsRequest(namespace="team-a", query="coverage gate")
    response = await stack.memory_stub().SearchPatterns(search, timeout=5)
    assert [result.pattern.id for result in response.results] == ["p-1"]


async def test_values_that_parse_but_mean_nothing_are_refused(stack: Stack) -> None:
    odd = pattern()
    odd.create_time.nanos = -5
    odd.total_cost_usd = float("nan")
    odd.type = memory_pb2.PatternType.ValueType(77)
    odd.form_responses["coverage"].number_value = float("inf")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.memory_stub().StorePattern(store(odd), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations_of(raised.value)) == {
        "pattern.create_time",
        "pattern.total_cost_usd",
        "pattern.type",
        "pattern.form_responses.coverage",
    }
