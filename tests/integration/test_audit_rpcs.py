"""Every memory RPC leaves one audit record; ListAuditEvents reads them back."""

from __future__ import annotations

import grpc
import pytest

from attune.memory.v1 import memory_pb2
from tests.support.audit_files import audit_file_records
from tests.support.stack import Stack

NS = "audited"


def store(pattern_id: str, content: str = "audited content") -> memory_pb2.StorePatternRequest:
    return memory_pb2.StorePatternRequest(
        namespace=NS,
        pattern=memory_pb2.Pattern(
            id=pattern_id, type=memory_pb2.PATTERN_TYPE_INSIGHT, content=content
        ),
    )


async def test_each_call_is_recorded_with_its_outcome(stack: Stack) -> None:
    stub = stack.memory_stub()
    await stub.StorePattern(store("a1"), timeout=5)
    await stub.GetPattern(memory_pb2.GetPatternRequest(namespace=NS, pattern_id="a1"), timeout=5)
    await stub.SearchPatterns(
        memory_pb2.SearchPatternsRequest(namespace=NS, query="audited"), timeout=5
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetPattern(
            memory_pb2.GetPatternRequest(namespace=NS, pattern_id="missing"), timeout=5
        )
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.StorePattern(store("bad id!"), timeout=5)
    await stub.DeletePattern(
        memory_pb2.DeletePatternRequest(namespace=NS, pattern_id="a1"), timeout=5
    )
    listed = await stub.ListAuditEvents(memory_pb2.ListAuditEventsRequest(namespace=NS), timeout=5)
    seen = [(e.action, e.outcome, list(e.pattern_ids)) for e in listed.events]
    assert seen == [
        ("delete", "OK", ["a1"]),
        ("store", "INVALID_ARGUMENT", []),
        ("get", "NOT_FOUND", []),
        ("search", "OK", ["a1"]),
        ("get", "OK", ["a1"]),
        ("store", "OK", ["a1"]),
    ]
    assert all(e.principal == "anonymous" and e.request_id for e in listed.events)
    assert listed.events[0].event_time.ToDatetime() >= listed.events[-1].event_time.ToDatetime()


async def test_audit_reads_filter_page_and_are_audited(stack: Stack) -> None:
    stub = stack.memory_stub()
    for n in range(5):
        await stub.StorePattern(store(f"p{n}"), timeout=5)
    failed = await stub.ListAuditEvents(
        memory_pb2.ListAuditEventsRequest(namespace=NS, filter='outcome = "INVALID_ARGUMENT"'),
        timeout=5,
    )
    assert failed.events == []
    first = await stub.ListAuditEvents(
        memory_pb2.ListAuditEventsRequest(namespace=NS, filter='action = "store"', page_size=3),
        timeout=5,
    )
    second = await stub.ListAuditEvents(
        memory_pb2.ListAuditEventsRequest(
            namespace=NS,
            filter='action = "store"',
            page_size=3,
            page_token=first.next_page_token,
        ),
        timeout=5,
    )
    ids = [e.pattern_ids[0] for e in [*first.events, *second.events]]
    assert ids == ["p4", "p3", "p2", "p1", "p0"]
    everywhere = await stub.ListAuditEvents(memory_pb2.ListAuditEventsRequest(), timeout=5)
    assert any(e.action == "audit" for e in everywhere.events), "reading the log is audited"
    records = audit_file_records(stack.root / "memory" / "audit.log")
    assert records
    assert all(record["principal"] == "anonymous" for record in records)
