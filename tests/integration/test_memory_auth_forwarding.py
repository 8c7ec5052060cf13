"""The credentials the executor sends the memory service, seen by a real gRPC server.

The memory side here is a small grpc.aio server on 127.0.0.1 port 0 that
records the metadata of every StorePattern, SearchPatterns and health Check it
receives, and refuses them on demand with the statuses the real memory
service gives. The executor is the real one, started as tests/conftest.py
starts it; its client is not mocked.

What is proven: the executor's own token goes with every call to memory, and
never a caller's; a store of a caller's run and a SearchRuns of a caller name
that caller in `attune-on-behalf-of` (delegation: memory applies the caller's
visibility), probes name nobody; refused credentials keep patterns queued and
surface as the caller's status; no token is ever logged. Last, the `attune`
CLI's token reaches a (recording) executor on every kind of call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from pydantic import SecretStr
from typer.testing import CliRunner

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service.cli.app import app
from executor_service.cli.client import EXIT_INVALID, connect
from memory_service.security.identity import hash_token
from memory_service.servicekit.logging import JsonFormatter
from tests.support.helpers import eventually, run_request
from tests.support.stack import Stack

EXECUTOR_TOKEN = "executor-token_4f1c9a7e2b6d8c0e3a5f"  # noqa: S105 - a test's own.
USER_TOKEN = "user-token_9d2e7b4a1c6f8e0b3d5a"  # noqa: S105 - a test's own.
USER_ID = "carol@example.com"
ON_BEHALF_OF = "attune-on-behalf-of"
MEMORY_SERVICE = "attune.memory.v1.MemoryService"

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass
class RecordingMemory:
    """What the memory server received, and which methods it refuses now."""

    port: int = 0
    calls: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    refusals: dict[str, grpc.StatusCode] = field(default_factory=dict)

    def received(self, method: str) -> list[dict[str, list[str]]]:
        """The metadata of every call of `method`, oldest first."""
        return [metadata for name, metadata in self.calls if name == method]

    def authorizations(self, method: str) -> list[list[str]]:
        """The `authorization` values of every call of `method`."""
        return [metadata.get("authorization", []) for metadata in self.received(method)]

    async def _admit(self, method: str, context: Context) -> None:
        metadata: dict[str, list[str]] = {}
        for key, value in context.invocation_metadata() or ():
            if isinstance(value, str):
                metadata.setdefault(key, []).append(value)
        self.calls.append((method, metadata))
        if (code := self.refusals.get(method)) is not None:
            # Worded like the real service: names a user, never a token.
            await context.abort(code, "user 'svc:someone' may not act in namespace 'default'")

    async def store(
        self, request: memory_pb2.StorePatternRequest, context: Context
    ) -> memory_pb2.StorePatternResponse:
        await self._admit("StorePattern", context)
        return memory_pb2.StorePatternResponse(pattern=request.pattern)

    async def search(
        self, request: memory_pb2.SearchPatternsRequest, context: Context
    ) -> memory_pb2.SearchPatternsResponse:
        await self._admit("SearchPatterns", context)
        return memory_pb2.SearchPatternsResponse(applied_filter=request.filter)

    async def check(
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> health_pb2.HealthCheckResponse:
        await self._admit("Check", context)
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def _unary(
    behaviour: Callable[[Any, Context], Awaitable[Any]], request_type: Any, response_type: Any
) -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=request_type.FromString,
        response_serializer=response_type.SerializeToString,
    )


@pytest.fixture
async def memory() -> AsyncIterator[RecordingMemory]:
    """The recording memory server, serving on a free port; others answer UNIMPLEMENTED."""
    recording = RecordingMemory()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                MEMORY_SERVICE,
                {
                    "StorePattern": _unary(
                        recording.store,
                        memory_pb2.StorePatternRequest,
                        memory_pb2.StorePatternResponse,
                    ),
                    "SearchPatterns": _unary(
                        recording.search,
                        memory_pb2.SearchPatternsRequest,
                        memory_pb2.SearchPatternsResponse,
                    ),
                },
            ),
            grpc.method_handlers_generic_handler(
                "grpc.health.v1.Health",
                {
                    "Check": _unary(
                        recording.check,
                        health_pb2.HealthCheckRequest,
                        health_pb2.HealthCheckResponse,
                    )
                },
            ),
        )
    )
    recording.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield recording
    finally:
        await server.stop(None)


@pytest.fixture(params=["variable", "file"])
async def stack(
    request: pytest.FixtureRequest, memory: RecordingMemory, tmp_path: Path
) -> AsyncIterator[Stack]:
    """The executor pointing at the recording server, its token set either way."""
    credentials: dict[str, object]
    if request.param == "variable":
        credentials = {"memory_token": SecretStr(EXECUTOR_TOKEN)}
    else:
        mounted = tmp_path / "memory-token"
        mounted.write_text(f"{EXECUTOR_TOKEN}\n")  # As a secret file often ends.
        credentials = {"memory_token_file": mounted}
    # The executor authenticates its callers: the user's token is the executor's to check.
    tokens = tmp_path / "executor-tokens.yaml"
    tokens.write_text(
        f"- token_sha256: {hash_token(USER_TOKEN)}\n  user_id: {USER_ID}\n"
        "  role: runner\n  namespaces: [default]\n"
    )
    running = Stack(
        tmp_path,
        memory_port=memory.port,
        executor_overrides={
            "outbox_replay_interval_seconds": 0.05,
            "tokens_file": tokens,
            **credentials,
        },
    )
    await running.start_executor()
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record of the test, debug included."""
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_no_token_logged(logs: pytest.LogCaptureFixture) -> None:
    """Neither token appears in any record, as the executor's JSON lines would show it."""
    formatter = JsonFormatter("executor")
    lines = [formatter.format(record) for record in logs.records]
    assert lines, "nothing was logged, so nothing was proven"
    for line in lines:
        assert EXECUTOR_TOKEN not in line
        assert USER_TOKEN not in line


def user(*extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """The metadata of a caller presenting their own token."""
    return (("authorization", f"Bearer {USER_TOKEN}"), *extra)


def search(query: str = "python package") -> executor_pb2.SearchRunsRequest:
    return executor_pb2.SearchRunsRequest(query=query)


# --- which token goes where ------------------------------------------------------------


async def test_stores_carry_the_executor_token_on_behalf_of_the_runs_owner(
    stack: Stack, memory: RecordingMemory, logs: pytest.LogCaptureFixture
) -> None:
    events = [
        event
        async for event in stack.executor_stub().RunWorkflow(
            run_request(package_name="demo"), timeout=30, metadata=user(("x-request-id", "run-1"))
        )
    ]
    assert events[-1].run_finished.run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_STORED
    # The outbox replay may offer the same pattern too (idempotent): every
    # store counts, the run's own among them.
    stores = memory.received("StorePattern")
    assert {tuple(store["authorization"]) for store in stores} == {(f"Bearer {EXECUTOR_TOKEN}",)}
    assert {tuple(store[ON_BEHALF_OF]) for store in stores} == {(USER_ID,)}
    assert ["run-1"] in [store.get("x-request-id") for store in stores]  # Alongside, not instead.
    assert_no_token_logged(logs)


async def test_probes_carry_the_executor_token(stack: Stack, memory: RecordingMemory) -> None:
    # The probe runs on its own schedule from start-up: wait for its first call.
    await eventually(lambda: _async(memory.received("Check")), bool)
    assert set(map(tuple, memory.authorizations("Check"))) == {(f"Bearer {EXECUTOR_TOKEN}",)}
    assert not any(ON_BEHALF_OF in check for check in memory.received("Check"))


async def test_a_search_is_made_on_behalf_of_the_caller_never_with_their_token(
    stack: Stack, memory: RecordingMemory, logs: pytest.LogCaptureFixture
) -> None:
    response = await stack.executor_stub().SearchRuns(
        search(), timeout=10, metadata=user(("x-request-id", "search-1"))
    )
    assert response.source == executor_pb2.SEARCH_SOURCE_MEMORY
    (received,) = memory.received("SearchPatterns")
    assert received["authorization"] == [f"Bearer {EXECUTOR_TOKEN}"]
    assert received[ON_BEHALF_OF] == [USER_ID]
    assert received["x-request-id"] == ["search-1"]
    assert_no_token_logged(logs)


async def test_a_search_without_caller_credentials_never_reaches_memory(
    stack: Stack, memory: RecordingMemory
) -> None:
    # The confused deputy's first step: the executor lent its own rights to anyone.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.executor_stub().SearchRuns(search(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert memory.received("SearchPatterns") == []


# --- refused credentials --------------------------------------------------------------


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED]
)
async def test_a_refused_store_keeps_the_pattern_queued_and_names_the_setting(
    stack: Stack,
    memory: RecordingMemory,
    logs: pytest.LogCaptureFixture,
    code: grpc.StatusCode,
) -> None:
    memory.refusals["StorePattern"] = code
    stub = stack.executor_stub()
    events = [
        event
        async for event in stub.RunWorkflow(
            run_request(package_name="demo"), timeout=30, metadata=user()
        )
    ]
    run = events[-1].run_finished.run
    assert run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_QUEUED
    (queued,) = [event.pattern_queued for event in events if event.HasField("pattern_queued")]
    assert queued.reason.startswith(code.name)
    assert "EXECUTOR_MEMORY_TOKEN" in queued.reason

    status = await stub.GetStatus(executor_pb2.GetStatusRequest(), timeout=5, metadata=user())
    assert status.outbox_depth == 1
    assert status.rejected_pattern_count == 0
    assert "EXECUTOR_MEMORY_TOKEN" in status.last_memory_error
    errors = [r for r in logs.records if r.levelno == logging.ERROR]
    assert any("configuration problem" in r.getMessage() for r in errors)
    assert all("EXECUTOR_MEMORY_TOKEN" in r.getMessage() for r in errors)
    # The replay meets the same refusal every interval: said once, not each time.
    await eventually(lambda: _async(memory.received("StorePattern")), lambda s: len(s) >= 3)
    assert len([r for r in logs.records if r.levelno == logging.ERROR]) == 1

    # Once the token is accepted, the outbox replay delivers the pattern.
    del memory.refusals["StorePattern"]
    await eventually(
        lambda: stub.GetStatus(executor_pb2.GetStatusRequest(), timeout=5, metadata=user()),
        lambda s: s.outbox_depth == 0,
    )
    stored = await stub.GetRun(
        executor_pb2.GetRunRequest(run_id=run.run_id), timeout=5, metadata=user()
    )
    assert stored.run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_STORED
    assert all(a == [f"Bearer {EXECUTOR_TOKEN}"] for a in memory.authorizations("StorePattern"))
    assert_no_token_logged(logs)


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED]
)
@pytest.mark.parametrize(
    "mode", [executor_pb2.SEARCH_RUNS_MODE_AUTO, executor_pb2.SEARCH_RUNS_MODE_HYBRID]
)
async def test_a_refused_search_is_the_callers_status_never_a_degraded_answer(
    stack: Stack,
    memory: RecordingMemory,
    logs: pytest.LogCaptureFixture,
    code: grpc.StatusCode,
    mode: executor_pb2.SearchRunsMode.ValueType,
) -> None:
    stub = stack.executor_stub()
    async for _ in stub.RunWorkflow(run_request(package_name="demo"), timeout=30, metadata=user()):
        pass  # A run the files could answer.
    memory.refusals["SearchPatterns"] = code
    request = executor_pb2.SearchRunsRequest(query="python package", mode=mode)

    with pytest.raises(grpc.aio.AioRpcError) as as_user:
        await stub.SearchRuns(request, timeout=10, metadata=user())
    assert as_user.value.code() == code
    assert "refused the executor acting for you" in str(as_user.value.details())
    assert "delegate: true" in str(as_user.value.details())
    # A caller's refusal is theirs alone: the executor's status does not show it.
    status = await stub.GetStatus(executor_pb2.GetStatusRequest(), timeout=5, metadata=user())
    assert "svc:someone" not in status.last_memory_error
    assert_no_token_logged(logs)


async def test_log_lines_of_a_forwarded_search_hold_no_header(
    stack: Stack, memory: RecordingMemory, logs: pytest.LogCaptureFixture
) -> None:
    memory.refusals["SearchPatterns"] = grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError):
        await stack.executor_stub().SearchRuns(search(), timeout=10, metadata=user())
    lines = [json.loads(JsonFormatter("executor").format(record)) for record in logs.records]
    assert any(line.get("code") == "UNAUTHENTICATED" for line in lines)  # The RPC was logged.
    assert not any("authorization" in json.dumps(line).lower() for line in lines)
    assert_no_token_logged(logs)


# --- the CLI's token ------------------------------------------------------------------


@dataclass
class RecordingExecutor:
    """A synchronous stand-in executor: records the metadata of each call it gets."""

    address: str = ""
    calls: list[tuple[str, list[str]]] = field(default_factory=list)

    def _record(self, method: str, context: grpc.ServicerContext) -> None:
        values = [v for k, v in context.invocation_metadata() if k == "authorization"]
        self.calls.append((method, [v for v in values if isinstance(v, str)]))

    def list_templates(
        self, request: executor_pb2.ListTemplatesRequest, context: grpc.ServicerContext
    ) -> executor_pb2.ListTemplatesResponse:
        self._record("ListTemplates", context)
        return executor_pb2.ListTemplatesResponse()

    def run_workflow(
        self, request: executor_pb2.RunWorkflowRequest, context: grpc.ServicerContext
    ) -> Iterator[executor_pb2.RunWorkflowResponse]:
        self._record("RunWorkflow", context)
        yield executor_pb2.RunWorkflowResponse(run_id="r")


@pytest.fixture
def executor() -> Iterator[RecordingExecutor]:
    recording = RecordingExecutor()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "attune.executor.v1.ExecutorService",
                {
                    "ListTemplates": grpc.unary_unary_rpc_method_handler(
                        recording.list_templates,
                        request_deserializer=executor_pb2.ListTemplatesRequest.FromString,
                        response_serializer=executor_pb2.ListTemplatesResponse.SerializeToString,
                    ),
                    "RunWorkflow": grpc.unary_stream_rpc_method_handler(
                        recording.run_workflow,
                        request_deserializer=executor_pb2.RunWorkflowRequest.FromString,
                        response_serializer=executor_pb2.RunWorkflowResponse.SerializeToString,
                    ),
                },
            ),
        )
    )
    recording.address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        yield recording
    finally:
        server.stop(None).wait()


def test_every_kind_of_cli_call_carries_the_token(executor: RecordingExecutor) -> None:
    with connect(executor.address, f" {USER_TOKEN}\n") as stub:
        stub.ListTemplates(executor_pb2.ListTemplatesRequest(), timeout=5)
        assert len(list(stub.RunWorkflow(executor_pb2.RunWorkflowRequest(), timeout=5))) == 1
    with connect(executor.address) as stub:
        stub.ListTemplates(executor_pb2.ListTemplatesRequest(), timeout=5)
    assert executor.calls == [
        ("ListTemplates", [f"Bearer {USER_TOKEN}"]),
        ("RunWorkflow", [f"Bearer {USER_TOKEN}"]),
        ("ListTemplates", []),
    ]


@pytest.mark.parametrize("how", ["option", "variable"])
def test_the_cli_takes_the_token_from_the_option_or_attune_token(
    executor: RecordingExecutor, how: str
) -> None:
    env = {"ATTUNE_EXECUTOR_ADDRESS": executor.address}
    args = ["templates", "list"]
    if how == "option":
        args += ["--token", USER_TOKEN]
    else:
        env["ATTUNE_TOKEN"] = USER_TOKEN
    result = CliRunner(env=env).invoke(app, args)
    assert result.exit_code == 0, result.output
    assert executor.calls == [("ListTemplates", [f"Bearer {USER_TOKEN}"])]
    assert USER_TOKEN not in result.output


def test_a_malformed_cli_token_is_refused_before_anything_is_sent(
    executor: RecordingExecutor,
) -> None:
    result = CliRunner(env={"ATTUNE_TOKEN": f"{USER_TOKEN} oops"}).invoke(
        app, ["templates", "list", "--address", executor.address]
    )
    assert result.exit_code == EXIT_INVALID, result.output
    assert "invalid --token / ATTUNE_TOKEN (nothing was sent)" in result.stderr
    assert USER_TOKEN not in result.output
    assert executor.calls == []


async def _async(value: Any) -> Any:
    """A probe for tests.support.helpers.eventually over state that is read, not awaited."""
    return value
