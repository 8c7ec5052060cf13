"""Nonsense numbers are refused over the wire, and nothing is stored (issue 10, finding 10)."""

from __future__ import annotations

import math

import grpc
import pytest

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service.runs.forms import to_form_value
from tests.support.helpers import violations_of
from tests.support.stack import Stack

NS = "team-a"


async def test_store_refuses_nan_in_metadata_and_a_negative_attempt_count(stack: Stack) -> None:
    stub = stack.memory_stub()
    pattern = memory_pb2.Pattern(id="p-1", type=memory_pb2.PATTERN_TYPE_EXECUTION, content="x")
    pattern.metadata.update({"ratio": math.nan, "nested": {"limit": math.inf}})
    pattern.agents.add(role="test_runner", attempt_count=-1, cost_usd=-0.5)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.StorePattern(
            memory_pb2.StorePatternRequest(namespace=NS, pattern=pattern), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations_of(raised.value)) == {
        "pattern.metadata.ratio",
        "pattern.metadata.nested.limit",
        "pattern.agents[0].attempt_count",
        "pattern.agents[0].cost_usd",
    }
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetPattern(
            memory_pb2.GetPatternRequest(namespace=NS, pattern_id="p-1"), timeout=5
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    # The same write with sensible numbers is stored.
    pattern.ClearField("metadata")
    pattern.agents[0].attempt_count = 0
    pattern.agents[0].cost_usd = 0.0
    stored = await stub.StorePattern(
        memory_pb2.StorePatternRequest(namespace=NS, pattern=pattern), timeout=5
    )
    assert stored.pattern.agents[0].attempt_count == 0


async def test_the_batch_refuses_each_item_with_nonsense_on_its_own(stack: Stack) -> None:
    stub = stack.memory_stub()
    good = memory_pb2.Pattern(id="good", type=memory_pb2.PATTERN_TYPE_INSIGHT, content="x")
    bad = memory_pb2.Pattern(id="bad", type=memory_pb2.PATTERN_TYPE_INSIGHT, content="x")
    bad.metadata.update({"score": -math.inf})
    answer = await stub.BatchStorePatterns(
        memory_pb2.BatchStorePatternsRequest(
            requests=[
                memory_pb2.StorePatternRequest(namespace=NS, pattern=good),
                memory_pb2.StorePatternRequest(namespace=NS, pattern=bad),
            ]
        ),
        timeout=5,
    )
    assert [r.code for r in answer.results] == [0, grpc.StatusCode.INVALID_ARGUMENT.value[0]]
    assert "requests[1].pattern.metadata.score" in answer.results[1].message


async def test_plan_refuses_nan_as_a_number_answer(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.executor_stub().PlanWorkflow(
            executor_pb2.PlanWorkflowRequest(
                template_id="python_package_publish",
                answers={
                    "package_name": to_form_value("demo"),
                    "test_coverage_required": to_form_value(math.nan),
                },
            ),
            timeout=5,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "test_coverage_required" in violations_of(raised.value)
