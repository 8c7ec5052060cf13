"""Forged page tokens answer INVALID_ARGUMENT on every paged RPC of both services.

Issue 10, finding 8: an offset of 2**63 overflowed SQLite's integers and
answered INTERNAL. Tokens are opaque but not signed, so a forger can put
anything behind the right query key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from memory_service.servicekit.paging import encode_token
from tests.support.helpers import store_insight, violations_of
from tests.support.redis_servers import RedisServer
from tests.support.stack import Stack

NS = "team-a"
HUGE = [2**63, 2**64 + 5, 10**40]


def forged(scope: str, **body: Any) -> str:
    payload = {**body, "q": hashlib.sha256(scope.encode()).hexdigest()[:16]}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


async def refused(call: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    assert "page_token" in violations_of(raised.value)


async def test_memory_lists_and_searches_refuse_a_forged_huge_offset(stack: Stack) -> None:
    stub = stack.memory_stub()
    await store_insight(stub, NS, "p-1", "coverage gate")
    for offset in HUGE:
        token = encode_token(offset, f"{NS}||")
        await refused(
            stub.ListPatterns(
                memory_pb2.ListPatternsRequest(namespace=NS, page_token=token), timeout=5
            )
        )
        scope = f"{NS}|coverage||0"
        await refused(
            stub.SearchPatterns(
                memory_pb2.SearchPatternsRequest(
                    namespace=NS, query="coverage", page_token=encode_token(offset, scope)
                ),
                timeout=5,
            )
        )
    # The service still answers a real page afterwards.
    listed = await stub.ListPatterns(memory_pb2.ListPatternsRequest(namespace=NS), timeout=5)
    assert [p.id for p in listed.patterns] == ["p-1"]


async def test_executor_pages_refuse_forged_tokens(stack: Stack) -> None:
    stub = stack.executor_stub()
    for offset in HUGE:
        await refused(
            stub.ListTemplates(
                executor_pb2.ListTemplatesRequest(page_token=encode_token(offset, "templates")),
                timeout=5,
            )
        )
    # A keyset cursor holding a lone surrogate (an ASCII \\ud800 escape in its JSON).
    await refused(
        stub.ListRuns(
            executor_pb2.ListRunsRequest(page_token=forged("runs:", a="\ud800")), timeout=5
        )
    )
    templates = await stub.ListTemplates(executor_pb2.ListTemplatesRequest(), timeout=5)
    assert templates.templates


async def test_a_redis_audit_cursor_beyond_64_bits_is_invalid_argument(
    tmp_path: Path, redis_server: RedisServer, key_prefix: str
) -> None:
    running = Stack(
        tmp_path,
        memory_overrides={
            "store": "redis",
            "redis_url": redis_server.url,
            "redis_key_prefix": key_prefix,
        },
    )
    await running.start_memory()
    try:
        stub = running.memory_stub()
        scope = f"audit|{NS!r}|"
        for after in ("99999999999999999999-0", f"{2**64}-1", f"1-{2**64}"):
            await refused(
                stub.ListAuditEvents(
                    memory_pb2.ListAuditEventsRequest(
                        namespace=NS, page_token=forged(scope, a=after)
                    ),
                    timeout=5,
                )
            )
        page = await stub.ListAuditEvents(
            memory_pb2.ListAuditEventsRequest(namespace=NS), timeout=5
        )
        assert page.events  # The refusals themselves were audited.
    finally:
        await running.close()
