"""A flood of refused calls cannot flush the audit log, nor limit a legitimate caller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from attune.memory.v1 import memory_pb2
from tests.support.audit_files import audit_file_records
from tests.support.secured_memory import TEAM_A, SecuredMemory, insight, secured_memory

FLOOD = 1500
IN_FLIGHT = 50
# A small log (two 64 KiB files): the flood's plain records would rotate it twice over.
LOG_BYTES = 64 * 1024
BURST = 40


@pytest.fixture
async def memory(tmp_path: Path) -> AsyncIterator[SecuredMemory]:
    async with secured_memory(
        tmp_path, audit_max_bytes=LOG_BYTES, audit_backups=1, denied_calls_burst=BURST
    ) as running:
        yield running


def audit_lines(data_dir: Path) -> list[dict[str, object]]:
    """The records of both log files, oldest first."""
    older, newer = data_dir / "audit.log.1", data_dir / "audit.log"
    return [*audit_file_records(older), *audit_file_records(newer)]


async def flood(memory: SecuredMemory) -> list[grpc.aio.AioRpcError]:
    """FLOOD unauthenticated GetPattern calls, IN_FLIGHT at a time; their errors."""
    stub = memory.stub()
    errors: list[grpc.aio.AioRpcError] = []
    request = memory_pb2.GetPatternRequest(namespace=TEAM_A, pattern_id="p-real")
    forged = (("authorization", "Bearer " + "Z" * 32),)
    for _ in range(0, FLOOD, IN_FLIGHT):
        calls = [stub.GetPattern(request, metadata=forged, timeout=10) for _ in range(IN_FLIGHT)]
        for outcome in await asyncio.gather(*calls, return_exceptions=True):
            assert isinstance(outcome, grpc.aio.AioRpcError), "a forged token was accepted"
            errors.append(outcome)
    return errors


async def test_a_flood_is_limited_and_the_log_keeps_real_records(memory: SecuredMemory) -> None:
    stub = memory.stub()
    await stub.StorePattern(insight("p-real", "a real insight"), metadata=memory.auth("alice"))
    data_dir = memory.stack.memory_settings().data_dir
    # Reading the audit log flushes it; root's read is itself one record.
    await stub.ListAuditEvents(memory_pb2.ListAuditEventsRequest(), metadata=memory.auth("root"))
    before = len(audit_lines(data_dir))

    errors = await flood(memory)

    codes = [error.code() for error in errors]
    unauthenticated = codes.count(grpc.StatusCode.UNAUTHENTICATED)
    exhausted = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert unauthenticated + exhausted == FLOOD, set(codes)
    # The burst, plus what the 1/s refill added while the flood ran.
    assert BURST <= unauthenticated <= BURST + 30
    # The whole burst is answered at once, within the first wave (in any order).
    assert codes[:IN_FLIGHT].count(grpc.StatusCode.UNAUTHENTICATED) >= BURST
    limited = next(e for e in errors if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED)
    status = rpc_status.from_call(limited)  # type: ignore[arg-type]
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR))
    assert 0 < retry.retry_delay.ToNanoseconds() <= 2 * 10**9

    # An authenticated caller from the same address is never limited.
    stored = await stub.StorePattern(
        insight("p-after", "stored during the flood"), metadata=memory.auth("alice")
    )
    assert stored.pattern.id == "p-after"
    # A denied authenticated caller has a budget of its own: a plain denial.
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.StorePattern(insight("p-carol", "x"), metadata=memory.auth("carol"))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    await stub.ListAuditEvents(memory_pb2.ListAuditEventsRequest(), metadata=memory.auth("root"))
    lines = audit_lines(data_dir)
    # The real record before the flood survived it.
    assert any(line["principal"] == "alice" and line["pattern_ids"] == ["p-real"] for line in lines)
    # One record per call within the budget, one for the first limited call;
    # the rest wait in a window that has not ended. Besides: root's two reads
    # (each audited after it answers), alice's store and carol's denial.
    assert len(lines) - before <= unauthenticated + 1 + 4
    folded = [line for line in lines if line["outcome"] == "RESOURCE_EXHAUSTED"]
    assert len(folded) == 1
    assert folded[0]["peer"]
    assert folded[0]["principal"] == ""


async def test_folded_calls_are_counted_when_the_service_stops(tmp_path: Path) -> None:
    async with secured_memory(
        tmp_path, denied_calls_burst=1, denied_calls_per_second=0.001
    ) as memory:
        stub = memory.stub()
        codes = []
        for _ in range(12):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.CountPatterns(memory_pb2.CountPatternsRequest(namespace=TEAM_A))
            codes.append(refused.value.code())
        assert (
            codes == [grpc.StatusCode.UNAUTHENTICATED] + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 11
        )
        data_dir = memory.stack.memory_settings().data_dir
    # Stopping closed every window: the 10 calls after the first are one record.
    lines = [line for line in audit_lines(data_dir) if line["action"] == "count"]
    assert [(line["outcome"], line["repeat_count"]) for line in lines] == [
        ("UNAUTHENTICATED", 1),
        ("RESOURCE_EXHAUSTED", 1),
        ("RESOURCE_EXHAUSTED", 10),
    ]


async def test_a_flood_of_undecodable_bytes_draws_on_the_same_budget(tmp_path: Path) -> None:
    async with secured_memory(
        tmp_path, denied_calls_burst=3, denied_calls_per_second=0.001
    ) as memory:
        # Bytes no protobuf parser accepts: a field tag with wire type 7.
        channel = memory.stack.channel(memory.stack.memory_port)
        garbage: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            "/attune.memory.v1.MemoryService/GetPattern"
        )
        codes = []
        for _ in range(40):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await garbage(b"\x0f\xff\xff", timeout=10)
            codes.append(refused.value.code())
        assert (
            codes
            == [grpc.StatusCode.INVALID_ARGUMENT] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 37
        )
        data_dir = memory.stack.memory_settings().data_dir
    lines = [line for line in audit_lines(data_dir) if line["action"] == "denied"]
    # Three plain records, the first limited call, then the other 36 as one.
    assert [(line["outcome"], line["repeat_count"]) for line in lines] == [
        ("INVALID_ARGUMENT", 1),
        ("INVALID_ARGUMENT", 1),
        ("INVALID_ARGUMENT", 1),
        ("RESOURCE_EXHAUSTED", 1),
        ("RESOURCE_EXHAUSTED", 36),
    ]


async def test_denied_items_of_a_batch_draw_on_the_same_budget(tmp_path: Path) -> None:
    async with secured_memory(
        tmp_path, denied_calls_burst=5, denied_calls_per_second=0.001
    ) as memory:
        stub = memory.stub()
        # carol only reads team-a: every item is denied. A batch of denials
        # must not write a record per item past the budget.
        batch = memory_pb2.BatchStorePatternsRequest(
            requests=[insight(f"p-{n}", "not allowed") for n in range(40)]
        )
        answer = await stub.BatchStorePatterns(batch, metadata=memory.auth("carol"))
        denied = grpc.StatusCode.PERMISSION_DENIED.value[0]
        exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert [r.code for r in answer.results] == [denied] * 5 + [exhausted] * 35
        # An allowed writer's batch from the same address is unaffected.
        allowed = await stub.BatchStorePatterns(
            memory_pb2.BatchStorePatternsRequest(requests=[insight("p-ok", "fine")]),
            metadata=memory.auth("alice"),
        )
        assert [r.code for r in allowed.results] == [0]
        data_dir = memory.stack.memory_settings().data_dir
    lines = [line for line in audit_lines(data_dir) if line["principal"] == "carol"]
    assert [(line["outcome"], line["repeat_count"]) for line in lines] == [
        *[("PERMISSION_DENIED", 1)] * 5,
        ("RESOURCE_EXHAUSTED", 1),
        ("RESOURCE_EXHAUSTED", 34),
    ]
