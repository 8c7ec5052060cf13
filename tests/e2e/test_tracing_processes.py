"""Both services as processes exporting spans to a real OTLP receiver (issue
16's Done-when): one RunWorkflow is one trace across both services, from the
executor's server span through each attempt (and its model API call) to the
StorePattern client span and the memory service's server span, with the
right parent of each; a caller's `traceparent` is honoured, and the model API
receives it. The batch processor waits a minute between exports here, so the
spans arrive only because a graceful stop flushes them. With the SDK
disabled, nothing is exported and both logs still carry the caller's ids.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.convert.enums import tier_name
from tests.support.fake_llm_server import FakeLLMServer, Scripted, openai_completion
from tests.support.helpers import run_request
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.process_pair import both_processes, executor_stub

pytestmark = pytest.mark.e2e

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
API_KEY = "sk-tracing-test-key-7731"
RUN_WORKFLOW = "/attune.executor.v1.ExecutorService/RunWorkflow"
STORE_PATTERN = "/attune.memory.v1.MemoryService/StorePattern"
SERVER, CLIENT = 2, 3  # trace_pb2.Span.SpanKind


def one(spans: list[ReceivedSpan], name: str, **where: object) -> ReceivedSpan:
    found = [
        s for s in spans if s.name == name and all(getattr(s, k) == v for k, v in where.items())
    ]
    assert len(found) == 1, (name, where, [(s.name, s.parent_span_id) for s in spans])
    return found[0]


def children(spans: list[ReceivedSpan], parent: ReceivedSpan, name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_span_id == parent.span_id and s.name == name]


async def run(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, seed: int, traceparent: str | None
) -> executor_pb2.Run:
    request = run_request(package_name=f"traced-{seed}")
    metadata = (("traceparent", traceparent),) if traceparent else None
    events = [e async for e in stub.RunWorkflow(request, timeout=60, metadata=metadata)]
    assert events[-1].HasField("run_finished"), events[-1]
    finished: executor_pb2.Run = events[-1].run_finished.run
    return finished


def check_run_trace(spans: list[ReceivedSpan], finished: executor_pb2.Run) -> ReceivedSpan:
    """The run's trace, span by span; returns its executor server span."""
    server = one(spans, RUN_WORKFLOW, kind=SERVER)
    assert server.service == "attune-executor"
    assert server.attributes["rpc.grpc.status_code"] == 0
    (validate,) = children(spans, server, "attune.validate")
    assert validate.attributes["attune.template_id"] == "python_package_publish"
    (run_span,) = children(spans, server, "attune.run")
    assert run_span.attributes["attune.run_id"] == finished.run_id
    assert run_span.attributes["attune.status"] == executor_pb2.RunStatus.Name(finished.status)
    # One span per attempt, under the run, saying which agent at which tier.
    attempts = children(spans, run_span, "attune.attempt")
    made = Counter(
        (agent.role, tier_name(attempt.tier), attempt.success)
        for agent in finished.agents
        for attempt in agent.attempts
    )
    spanned = Counter(
        (
            s.attributes["attune.role"],
            s.attributes["attune.tier"],
            s.attributes["attune.outcome"] == "succeeded",
        )
        for s in attempts
    )
    assert spanned == made
    assert sum(made.values()) > 1
    for attempt in attempts:
        (http,) = [s for s in spans if s.parent_span_id == attempt.span_id]
        assert (http.kind, http.name) == (CLIENT, "POST")
    (persist,) = children(spans, run_span, "attune.persist")
    (store,) = children(spans, run_span, "attune.store")
    assert store.attributes["attune.outcome"] == "stored"
    assert persist.attributes["attune.run_id"] == finished.run_id
    (client,) = children(spans, store, STORE_PATTERN)
    assert (client.kind, client.service) == (CLIENT, "attune-executor")
    (memory,) = children(spans, client, STORE_PATTERN)
    assert (memory.kind, memory.service) == (SERVER, "attune-memory")
    assert memory.attributes["rpc.grpc.status_code"] == 0
    (secure,) = children(spans, memory, "attune.write.secure")
    assert secure.attributes["attune.namespace"] == "default"
    assert {"attune.secrets_ms", "attune.scrub_ms"} <= set(secure.attributes)
    (stored,) = children(spans, memory, "attune.write.store")
    assert stored.attributes["attune.deduped"] is False
    return server


@pytest.mark.timeout(180)
async def test_one_run_is_one_trace_across_both_services_continuing_the_callers(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "openai.key"
    key_file.write_text(f"{API_KEY}\n")
    answer = json.dumps({"status": "success", "criteria": {}, "summary": "done"})
    with OtlpReceiver() as receiver, FakeLLMServer() as model_api:
        model_api.script(Scripted(body=openai_completion(answer)))
        environment = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            # Nothing is exported before the services stop: the flush at a
            # graceful stop is what delivers the spans.
            "OTEL_BSP_SCHEDULE_DELAY": "60000",
        }
        environment.pop("OTEL_SDK_DISABLED", None)
        with both_processes(
            tmp_path,
            environment=environment,
            RUNNER="openai",
            OPENAI_API_KEY_FILE=str(key_file),
            OPENAI_BASE_URL=model_api.url,
            LLM_MAX_RETRIES="0",
        ) as (memory, executor):
            async with executor_stub(executor.address) as stub:
                continued = await run(stub, 1, f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")
                calls_continued = len(model_api.requests)
                fresh = await run(stub, 2, None)
            assert executor.terminate() == 0
            assert memory.terminate() == 0

        spans = receiver.wait_for(
            lambda got: sum(s.name == STORE_PATTERN and s.kind == SERVER for s in got) == 2
        )

    # Two runs, two traces, nothing else: probes make no spans.
    traces = {s.trace_id for s in spans}
    assert len(traces) == 2
    assert CALLER_TRACE in traces
    assert not [s for s in spans if "grpc.health" in s.name]

    caller_spans = [s for s in spans if s.trace_id == CALLER_TRACE]
    server = check_run_trace(caller_spans, continued)
    assert server.parent_span_id == CALLER_SPAN  # The caller's span is the parent.

    (fresh_trace,) = traces - {CALLER_TRACE}
    fresh_server = check_run_trace([s for s in spans if s.trace_id == fresh_trace], fresh)
    assert fresh_server.parent_span_id == ""  # No traceparent: a new root.

    # The model API got the run's traceparent, from the attempt's HTTP span.
    http_spans = {s.span_id for s in caller_spans if s.name == "POST"}
    assert calls_continued > 0
    for request in model_api.requests[:calls_continued]:
        version, trace_id, parent, _ = request.headers["traceparent"].split("-")
        assert (version, trace_id) == ("00", CALLER_TRACE)
        assert parent in http_spans

    # Logs join traces: the RPC's log line carries its server span's ids.
    lines = [json.loads(line) for line in (tmp_path / "executor.log").read_text().splitlines()]
    finished = [
        line
        for line in lines
        if line.get("msg") == "rpc finished" and line.get("method") == RUN_WORKFLOW
    ]
    assert [(line["trace_id"], line["span_id"]) for line in finished] == [
        (CALLER_TRACE, server.span_id),
        (fresh_trace, fresh_server.span_id),
    ]


@pytest.mark.timeout(120)
async def test_with_the_sdk_disabled_nothing_is_exported_and_logs_keep_the_callers_trace(
    tmp_path: Path,
) -> None:
    with OtlpReceiver() as receiver:
        environment = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_SDK_DISABLED": "true",
        }
        with both_processes(tmp_path, environment=environment, RUNNER="simulated") as (
            memory,
            executor,
        ):
            async with executor_stub(executor.address) as stub:
                await run(stub, 1, f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")
            assert executor.terminate() == 0
            assert memory.terminate() == 0
        assert receiver.spans() == []
        assert receiver.exports == 0

    # No spans of their own: both logs carry the caller's ids, passed on as they came.
    for name, method in (("executor", RUN_WORKFLOW), ("memory", STORE_PATTERN)):
        lines = [json.loads(line) for line in (tmp_path / f"{name}.log").read_text().splitlines()]
        (finished,) = [
            line
            for line in lines
            if line.get("msg") == "rpc finished" and line.get("method") == method
        ]
        assert (finished["trace_id"], finished["span_id"]) == (CALLER_TRACE, CALLER_SPAN)
