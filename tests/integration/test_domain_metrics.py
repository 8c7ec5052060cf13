"""Domain metrics where the events happen, through both services in this
process: each service's registry is read before and after, and every
series must have grown by exactly what the calls did."""

from __future__ import annotations

import grpc

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service import metrics as executor_metrics
from memory_service import metrics as memory_metrics
from memory_service.security.secrets import find_secrets
from tests.support.helpers import code_of, run_request, run_to_end
from tests.support.scrape import Scrape, grew, read
from tests.support.stack import Stack

NS = "metrics"
AWS_KEY = "AKIAZ7Q4M2W8R5T1Y6UX"


def insight(pattern_id: str, content: str) -> memory_pb2.StorePatternRequest:
    return memory_pb2.StorePatternRequest(
        namespace=NS,
        pattern=memory_pb2.Pattern(
            id=pattern_id, type=memory_pb2.PATTERN_TYPE_INSIGHT, content=content
        ),
    )


def memory() -> Scrape:
    return read(memory_metrics.REGISTRY)


def executor() -> Scrape:
    return read(executor_metrics.REGISTRY)


async def test_writes_count_as_stored_deduped_scrubbed_or_rejected_by_reason(stack: Stack) -> None:
    await stack.stop_memory()
    stack.memory_overrides = {"max_pattern_bytes": 4000}
    await stack.start_memory()
    stub = stack.memory_stub()
    before = memory()
    scrubbed = insight("mail", "write to jane.doe@example.org or john@example.com")
    first = await stub.StorePattern(scrubbed, timeout=5)
    assert not first.deduped
    classification = memory_metrics.classification_name(first.pattern.classification)
    assert (await stub.StorePattern(scrubbed, timeout=5)).deduped
    conflict = stub.StorePattern(insight("mail", "another text under the same id"), timeout=5)
    assert await code_of(conflict) == grpc.StatusCode.ALREADY_EXISTS
    secret = stub.StorePattern(insight("key", f"the key is {AWS_KEY}"), timeout=5)
    assert await code_of(secret) == grpc.StatusCode.INVALID_ARGUMENT
    big = stub.StorePattern(insight("big", "word " * 1000), timeout=5)
    assert await code_of(big) == grpc.StatusCode.INVALID_ARGUMENT
    invalid = stub.StorePattern(insight("", "no id"), timeout=5)
    assert await code_of(invalid) == grpc.StatusCode.INVALID_ARGUMENT
    after = memory()

    stored = "attune_memory_patterns_stored_total"
    assert grew(before, after, stored, classification=classification) == 1
    assert (
        after.total("attune_memory_patterns_stored_total")
        - before.total("attune_memory_patterns_stored_total")
        == 1
    )
    assert grew(before, after, "attune_memory_patterns_deduped_total") == 1
    assert grew(before, after, "attune_memory_pii_scrubbed_total", kind="email") == 2 * 2
    rejected = "attune_memory_patterns_rejected_total"
    for reason in ("conflict", "secret", "too_large", "invalid"):
        assert grew(before, after, rejected, reason=reason) == 1, reason
    assert after.total(rejected) - before.total(rejected) == 4
    kinds = {f.kind for f in find_secrets(insight("key", f"the key is {AWS_KEY}").pattern)}
    for kind in kinds:
        assert grew(before, after, "attune_memory_secrets_refused_total", kind=kind) == 1
    store = {"grpc_service": "attune.memory.v1.MemoryService", "grpc_method": "StorePattern"}
    handled = "grpc_server_handled_total"
    assert grew(before, after, handled, **store, grpc_type="unary", grpc_code="OK") == 2
    assert (
        grew(before, after, handled, **store, grpc_type="unary", grpc_code="INVALID_ARGUMENT") == 3
    )


async def test_a_batch_counts_each_item(stack: Stack) -> None:
    stub = stack.memory_stub()
    before = memory()
    response = await stub.BatchStorePatterns(
        memory_pb2.BatchStorePatternsRequest(
            requests=[
                insight("b-1", "first of the batch"),
                insight("b-2", f"holds {AWS_KEY}"),
                insight("b-3", "third of the batch"),
            ]
        ),
        timeout=5,
    )
    assert [result.code for result in response.results] == [0, 3, 0]
    after = memory()
    assert (
        after.total("attune_memory_patterns_stored_total")
        - before.total("attune_memory_patterns_stored_total")
        == 2
    )
    assert grew(before, after, "attune_memory_patterns_rejected_total", reason="secret") == 1


async def test_searches_count_by_mode_and_source_on_both_sides(stack: Stack) -> None:
    before_executor, before_memory = executor(), memory()
    events = await run_to_end(stack.executor_stub(), run_request(package_name="searched"))
    run = events[-1].run_finished.run
    stub = stack.executor_stub()
    for mode in (
        executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES,
        executor_pb2.SEARCH_RUNS_MODE_MEMORY,
        executor_pb2.SEARCH_RUNS_MODE_HYBRID,
        executor_pb2.SEARCH_RUNS_MODE_AUTO,
    ):
        response = await stub.SearchRuns(
            executor_pb2.SearchRunsRequest(query="searched", mode=mode), timeout=5
        )
        assert not response.degraded
    after_executor, after_memory = executor(), memory()

    searches = "attune_executor_search_seconds_count"
    for asked, source in (
        ("local_files", "local_files"),
        ("memory", "memory"),
        ("hybrid", "hybrid"),
        ("auto", "memory"),
    ):
        assert grew(before_executor, after_executor, searches, mode=asked, source=source) == 1
    assert after_executor.total(searches) - before_executor.total(searches) == 4
    degraded = "attune_executor_searches_degraded_total"
    assert after_executor.total(degraded) == before_executor.total(degraded)
    # Three of them asked the memory service, which answered by keyword.
    keyword = {"mode": "keyword", "source": "embedded"}
    assert grew(before_memory, after_memory, "attune_memory_search_seconds_count", **keyword) == 3

    runs = {"template_id": run.template_id, "runner": "simulated"}
    status = executor_metrics.RUN_STATUSES[run.status]
    finished = grew(
        before_executor, after_executor, "attune_executor_runs_total", **runs, status=status
    )
    assert finished == 1
    assert (
        after_executor.total("attune_executor_runs_total")
        - before_executor.total("attune_executor_runs_total")
        == 1
    )
    assert run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_STORED
    deliveries = "attune_executor_pattern_deliveries_total"
    assert grew(before_executor, after_executor, deliveries, outcome="stored") == 1
    assert after_executor.total(deliveries) - before_executor.total(deliveries) == 1


async def test_an_unreachable_memory_degrades_auto_searches_to_the_run_files(
    stack: Stack,
) -> None:
    await run_to_end(stack.executor_stub(), run_request(package_name="offline"))
    await stack.stop_memory()
    before = executor()
    response = await stack.executor_stub().SearchRuns(
        executor_pb2.SearchRunsRequest(query="offline"), timeout=10
    )
    assert response.degraded
    assert response.source == executor_pb2.SEARCH_SOURCE_LOCAL_FILES
    after = executor()
    assert grew(before, after, "attune_executor_searches_degraded_total", source="local_files") == 1
    searches = "attune_executor_search_seconds_count"
    assert grew(before, after, searches, mode="auto", source="local_files") == 1
