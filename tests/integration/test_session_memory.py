"""A session's recent form choices, remembered in the memory service's context.

Both services are the real ones, in this process (tests/conftest.py). A run
whose request names a session leaves the answers as given in the executor's
namespace under `form:<template_id>`; the write is a background task, so the
tests poll the memory service for it rather than expect it when the run ends.
Without a session nothing is written, a memory outage never costs a run, and
shutdown cancels a write that hangs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service.memory.client import MemoryClient
from tests.support.helpers import Answer, eventually, run_request, run_to_end, violations_of
from tests.support.stack import Stack, running_stack

# Not the default namespace, so the test shows which one the executor uses.
NAMESPACE = "sessions"
TEMPLATE = "python_package_publish"
KEY = f"form:{TEMPLATE}"

# Some answers given, some left to defaults: only the given ones are choices.
GIVEN: dict[str, Answer] = {
    "package_name": "acme-widgets",
    "has_tests": True,
    "test_coverage_required": 85.0,
    "quality_checks": ["mypy", "ruff"],
}

Context = grpc.aio.ServicerContext[Any, Any]


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Stack]:
    """A stack whose executor keeps its memory in NAMESPACE."""
    async with running_stack(
        tmp_path, memory_namespace=NAMESPACE, outbox_replay_interval_seconds=0.05
    ) as running:
        yield running


def session_request(session_id: str, **answers: Answer) -> executor_pb2.RunWorkflowRequest:
    request = run_request(**(answers or GIVEN))
    request.session_id = session_id
    return request


async def remembered(stack: Stack, session_id: str) -> list[memory_pb2.ContextEntry]:
    """The session's entries in the executor's namespace, as the memory service has them."""
    response = await stack.memory_stub().GetContext(
        memory_pb2.GetContextRequest(namespace=NAMESPACE, session_id=session_id), timeout=5
    )
    return list(response.entries)


async def test_a_run_with_a_session_remembers_the_answers_given(sessions: Stack) -> None:
    events = await run_to_end(sessions.executor_stub(), session_request("s-1"))
    assert events[-1].WhichOneof("event") == "run_finished"
    entries = await eventually(lambda: remembered(sessions, "s-1"), bool)
    assert [entry.key for entry in entries] == [KEY]
    # Exactly the answers sent: the defaults the run resolved are not choices.
    assert json.loads(entries[0].value) == GIVEN
    # The memory service's default TTL applies (the executor sets none).
    assert entries[0].expire_time.ToSeconds() > entries[0].update_time.ToSeconds()


async def test_a_run_without_a_session_writes_no_context(sessions: Stack) -> None:
    stub = sessions.executor_stub()
    without = [("x-request-id", "run-without-session")]
    events = [event async for event in stub.RunWorkflow(run_request(**GIVEN), metadata=without)]
    assert events[-1].run_finished.run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_STORED
    # A control run with a session, started after the first ended: once its
    # write is visible, a write the first run had started would be too.
    with_session = [("x-request-id", "run-with-session")]
    async for _ in stub.RunWorkflow(session_request("control"), metadata=with_session):
        pass
    await eventually(lambda: remembered(sessions, "control"), bool)
    audit = await sessions.memory_stub().ListAuditEvents(
        memory_pb2.ListAuditEventsRequest(namespace=NAMESPACE, page_size=1000), timeout=5
    )
    # Each audit record carries the request id the executor forwarded.
    by_run = {
        (event.request_id, event.action)
        for event in audit.events
        if event.request_id in {"run-without-session", "run-with-session"}
    }
    assert by_run == {
        ("run-without-session", "store"),
        ("run-with-session", "store"),
        ("run-with-session", "context"),
    }


async def test_a_run_succeeds_while_the_memory_service_is_down(
    sessions: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    await sessions.stop_memory()
    caplog.set_level(logging.WARNING, logger="attune.executor.memory")
    events = await run_to_end(sessions.executor_stub(), session_request("s-down"))
    run = events[-1].run_finished.run
    assert run.status in (executor_pb2.RUN_STATUS_SUCCEEDED, executor_pb2.RUN_STATUS_FAILED)
    assert run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_QUEUED

    async def warnings() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "form choices not remembered"]

    [warning] = await eventually(warnings, bool)
    assert warning.levelno == logging.WARNING
    assert warning.__dict__["key"] == KEY
    # Neither the values nor the session id reach the log.
    logged = json.dumps({k: str(v) for k, v in warning.__dict__.items()})
    assert "acme-widgets" not in logged
    assert "s-down" not in logged


async def test_a_too_long_session_id_is_invalid_argument(sessions: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await run_to_end(sessions.executor_stub(), session_request("s" * 200))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations_of(raised.value)) == {"session_id"}
    # The memory service's limit, 128 characters, is itself accepted.
    longest = "s" * 128
    await run_to_end(sessions.executor_stub(), session_request(longest))
    await eventually(lambda: remembered(sessions, longest), bool)


async def test_recent_choices_reads_back_what_a_run_remembered(sessions: Stack) -> None:
    await run_to_end(sessions.executor_stub(), session_request("s-1"))
    client = MemoryClient(sessions.memory_address, NAMESPACE, timeout_seconds=5)
    try:
        choices = await eventually(lambda: client.recent_choices("s-1", TEMPLATE), bool)
        assert choices == GIVEN
        assert await client.recent_choices("unknown-session", TEMPLATE) is None
        assert await client.recent_choices("s-1", "code_review") is None
    finally:
        await client.close()


async def test_the_latest_run_of_a_session_wins(sessions: Stack) -> None:
    stub = sessions.executor_stub()
    await run_to_end(stub, session_request("s-2", package_name="first"))
    await eventually(lambda: remembered(sessions, "s-2"), bool)
    await run_to_end(stub, session_request("s-2", package_name="second", has_tests=False))

    async def latest() -> dict[str, Any]:
        [entry] = await remembered(sessions, "s-2")
        value: dict[str, Any] = json.loads(entry.value)
        return value

    assert await eventually(latest, lambda v: v.get("package_name") == "second") == {
        "package_name": "second",
        "has_tests": False,
    }


class HangingMemory:
    """A memory service whose SetContext never answers, until cancelled."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def set_context(
        self, request: memory_pb2.SetContextRequest, context: Context
    ) -> memory_pb2.SetContextResponse:
        self.entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def handler(self) -> grpc.GenericRpcHandler:
        """Serves SetContext alone: the other methods answer UNIMPLEMENTED."""
        set_context = grpc.unary_unary_rpc_method_handler(
            self.set_context,
            request_deserializer=memory_pb2.SetContextRequest.FromString,
            response_serializer=memory_pb2.SetContextResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(
            "attune.memory.v1.MemoryService", {"SetContext": set_context}
        )


async def test_shutdown_cancels_a_write_that_hangs(caplog: pytest.LogCaptureFixture) -> None:
    hanging = HangingMemory()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((hanging.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    # A deadline far beyond the drain: only the drain can end this write.
    client = MemoryClient(f"127.0.0.1:{port}", NAMESPACE, timeout_seconds=60)
    try:
        caplog.set_level(logging.WARNING, logger="attune.executor.memory")
        client.remember_choices_later("s-hang", TEMPLATE, GIVEN)
        assert client.pending_writes == 1
        await asyncio.wait_for(hanging.entered.wait(), timeout=10)
        await asyncio.wait_for(client.drain(within=0.05), timeout=10)
        assert client.pending_writes == 0
        assert any("cancelled at shutdown" in r.getMessage() for r in caplog.records)
    finally:
        await client.close()
        await server.stop(None)
