"""ListPatterns, CountPatterns and SearchPatterns options over gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from tests.support.helpers import violations_of
from tests.support.stack import Stack, running_stack

NAMESPACE = "queries"


def pattern(n: int, template: str, success: bool, cost: float) -> memory_pb2.Pattern:
    made = memory_pb2.Pattern(
        id=f"p{n}",
        type=memory_pb2.PATTERN_TYPE_EXECUTION,
        template_id=template,
        success=success,
        total_cost_usd=cost,
        content=f"run {n} of {template.replace('_', ' ')}",
    )
    made.agents.add(role="linter", tier=common_pb2.TIER_PREMIUM if n % 2 else common_pb2.TIER_CHEAP)
    made.create_time.FromSeconds(1_767_225_600 + n * 3600)
    return made


@pytest.fixture
async def stocked(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as stack:
        requests = [
            memory_pb2.StorePatternRequest(namespace=NAMESPACE, pattern=p)
            for p in (
                pattern(1, "code_review", True, 0.10),
                pattern(2, "code_review", False, 0.30),
                pattern(3, "documentation", True, 0.05),
                pattern(4, "code_review", True, 0.20),
            )
        ]
        await stack.memory_stub().BatchStorePatterns(
            memory_pb2.BatchStorePatternsRequest(requests=requests), timeout=10
        )
        yield stack


async def test_list_orders_filters_and_pages(stocked: Stack) -> None:
    stub = stocked.memory_stub()
    first = await stub.ListPatterns(
        memory_pb2.ListPatternsRequest(
            namespace=NAMESPACE, filter='template_id = "code_review"', page_size=2
        ),
        timeout=5,
    )
    assert [p.id for p in first.patterns] == ["p4", "p2"]
    assert first.total_size == 3
    second = await stub.ListPatterns(
        memory_pb2.ListPatternsRequest(
            namespace=NAMESPACE,
            filter='template_id = "code_review"',
            page_size=2,
            page_token=first.next_page_token,
        ),
        timeout=5,
    )
    assert [p.id for p in second.patterns] == ["p1"]
    assert second.next_page_token == ""
    oldest = await stub.ListPatterns(
        memory_pb2.ListPatternsRequest(namespace=NAMESPACE, order_by="create_time"), timeout=5
    )
    assert [p.id for p in oldest.patterns] == ["p1", "p2", "p3", "p4"]


async def test_list_rejects_bad_order_and_foreign_tokens(stocked: Stack) -> None:
    stub = stocked.memory_stub()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ListPatterns(
            memory_pb2.ListPatternsRequest(namespace=NAMESPACE, order_by="cost desc"), timeout=5
        )
    assert "order_by" in violations_of(raised.value)
    first = await stub.ListPatterns(
        memory_pb2.ListPatternsRequest(namespace=NAMESPACE, page_size=1), timeout=5
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ListPatterns(
            memory_pb2.ListPatternsRequest(
                namespace=NAMESPACE, filter="success = true", page_token=first.next_page_token
            ),
            timeout=5,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in violations_of(raised.value)


async def test_count_groups_with_success_rate_and_cost(stocked: Stack) -> None:
    stub = stocked.memory_stub()
    counted = await stub.CountPatterns(
        memory_pb2.CountPatternsRequest(namespace=NAMESPACE, group_by="template_id"), timeout=5
    )
    assert counted.total_count == 4
    groups = {group.key: group for group in counted.groups}
    review = groups["code_review"]
    assert (review.count, review.success_count) == (3, 2)
    assert review.success_rate == pytest.approx(2 / 3)
    assert review.total_cost_usd == pytest.approx(0.60)
    assert review.mean_cost_usd == pytest.approx(0.20)
    by_tier = await stub.CountPatterns(
        memory_pb2.CountPatternsRequest(
            namespace=NAMESPACE, group_by="agents.tier", filter="success = true"
        ),
        timeout=5,
    )
    assert {group.key: group.count for group in by_tier.groups} == {"PREMIUM": 2, "CHEAP": 1}
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CountPatterns(
            memory_pb2.CountPatternsRequest(namespace=NAMESPACE, group_by="content"), timeout=5
        )
    assert "group_by" in violations_of(raised.value)


async def test_search_pages_and_recency(stocked: Stack) -> None:
    stub = stocked.memory_stub()
    request = memory_pb2.SearchPatternsRequest(
        namespace=NAMESPACE, query="code review", page_size=2, disable_query_understanding=True
    )
    first = await stub.SearchPatterns(request, timeout=5)
    assert first.total_size == 3
    assert len(first.results) == 2
    request.page_token = first.next_page_token
    second = await stub.SearchPatterns(request, timeout=5)
    ids = {r.pattern.id for r in first.results} | {r.pattern.id for r in second.results}
    assert ids == {"p1", "p2", "p4"}
    recent = memory_pb2.SearchPatternsRequest(
        namespace=NAMESPACE, query="code review", explain=True, disable_query_understanding=True
    )
    recent.recency.enabled = True
    recent.recency.half_life.FromSeconds(3600)
    ranked = await stub.SearchPatterns(recent, timeout=5)
    assert [r.pattern.id for r in ranked.results] == ["p4", "p2", "p1"]
    factors = [r.explanation.recency_factor for r in ranked.results]
    assert factors == sorted(factors, reverse=True)
    assert factors[0] < 1.0
