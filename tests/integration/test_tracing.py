"""Spans of both services in this process, read from the SDK's in-memory
exporter: the parts of a run and of a write, their attributes, errors with
their codes, searches on both sides, and that no span carries a secret, an
answer, a query or a pattern's text."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.convert.enums import tier_name
from memory_service.servicekit.tracing import client_interceptors
from tests.support.helpers import code_of, run_request, run_to_end
from tests.support.spans import (
    SpanRecorder,
    children,
    named,
    parent_id,
    span_recorder,
    texts,
    trace_of,
    unredacted_recorder,
)
from tests.support.stack import Stack

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = (("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"),)
RUN_WORKFLOW = "/attune.executor.v1.ExecutorService/RunWorkflow"
STORE_PATTERN = "/attune.memory.v1.MemoryService/StorePattern"
SEARCH_PATTERNS = "/attune.memory.v1.MemoryService/SearchPatterns"
SEARCH_RUNS = "/attune.executor.v1.ExecutorService/SearchRuns"

# What a span must never carry: an answer, a query, pattern text, a secret.
ANSWER = "zanzibar-quokka-answer"
QUERY_WORD = "quokka"
SENSITIVE_TEXT = "salary review of the ombudsman quokka"
SECRET = "AKIAZ7Q4M2W8R5T1Y6UX"  # noqa: S105 (a fake key the scanner refuses)


@pytest.fixture
def spans() -> SpanRecorder:
    return span_recorder()


def finished(recorder: SpanRecorder) -> list[ReadableSpan]:
    return list(recorder.get_finished_spans())


def one(spans: list[ReadableSpan], name: str, kind: SpanKind | None = None) -> ReadableSpan:
    found = [s for s in named(spans, name) if kind is None or s.kind == kind]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def has_server_span(method: str) -> Callable[[list[ReadableSpan]], bool]:
    """Whether the server span of `method` has ended (after an abort, it ends
    after the client has the status)."""
    return lambda spans: any(s.kind == SpanKind.SERVER for s in named(spans, method))


async def test_a_run_spans_validation_attempts_persist_and_store_under_the_callers_trace(
    stack: Stack, spans: SpanRecorder
) -> None:
    request = run_request(package_name=ANSWER)
    request.seed = 3
    events = [
        e
        async for e in stack.executor_stub().RunWorkflow(request, timeout=30, metadata=TRACEPARENT)
    ]
    run = events[-1].run_finished.run
    # The caller's trace (this process's provider also sees other tests' leftovers).
    got = [s for s in finished(spans) if trace_of(s) == CALLER_TRACE]

    server = one(got, RUN_WORKFLOW, SpanKind.SERVER)
    assert parent_id(server) == CALLER_SPAN
    (validate,) = children(got, server, "attune.validate")
    assert validate.attributes == {
        "attune.template_id": "python_package_publish",
        "attune.agents": len(run.agents),
    }
    (run_span,) = children(got, server, "attune.run")
    assert run_span.attributes is not None
    assert run_span.attributes["attune.run_id"] == run.run_id
    assert run_span.attributes["attune.template_id"] == run.template_id
    attempts = children(got, run_span, "attune.attempt")
    expected = sorted(
        (agent.role, tier_name(attempt.tier), attempt.number, attempt.success)
        for agent in run.agents
        for attempt in agent.attempts
    )
    seen = []
    for attempt in attempts:
        values = attempt.attributes or {}
        outcome = values["attune.outcome"]
        seen.append(
            (
                values["attune.role"],
                values["attune.tier"],
                values["attune.number"],
                outcome == "succeeded",
            )
        )
    assert sorted(seen) == expected
    (persist,) = children(got, run_span, "attune.persist")
    (store,) = children(got, run_span, "attune.store")
    assert store.attributes is not None
    assert store.attributes["attune.outcome"] == "stored"
    assert store.attributes["attune.namespace"] == "default"
    (client,) = children(got, store, STORE_PATTERN)
    assert client.kind == SpanKind.CLIENT
    (memory,) = children(got, client, STORE_PATTERN)
    assert memory.kind == SpanKind.SERVER
    (secure,) = children(got, memory, "attune.write.secure")
    assert secure.attributes is not None
    assert secure.attributes["attune.secrets_ms"] >= 0  # type: ignore[operator]
    assert secure.attributes["attune.scrub_ms"] >= 0  # type: ignore[operator]
    (written,) = children(got, memory, "attune.write.store")
    assert (written.attributes or {})["attune.backend"] == "embedded"
    # Spans end inside their parents.
    for child, parent in ((persist, run_span), (store, run_span), (run_span, server)):
        assert parent.start_time is not None
        assert parent.end_time is not None
        assert parent.start_time <= (child.start_time or 0) <= (child.end_time or 0)
        assert (child.end_time or 0) <= parent.end_time


async def test_a_sensitive_write_is_sealed_under_its_store_span(
    stack: Stack, spans: SpanRecorder
) -> None:
    # The embedded store seals on its writer thread: the trace goes with the write.
    pattern = memory_pb2.Pattern(
        id="sealed-1",
        type=memory_pb2.PATTERN_TYPE_INSIGHT,
        content=SENSITIVE_TEXT,
        classification=common_pb2.CLASSIFICATION_SENSITIVE,
    )
    await stack.memory_stub().StorePattern(
        memory_pb2.StorePatternRequest(namespace="team", pattern=pattern), timeout=10
    )
    got = finished(spans)
    server = one(got, STORE_PATTERN, SpanKind.SERVER)
    (written,) = children(got, server, "attune.write.store")
    (sealed,) = children(got, written, "attune.write.encrypt")
    assert sealed.attributes == {"attune.namespace": "team", "attune.pattern_id": "sealed-1"}
    (secure,) = children(got, server, "attune.write.secure")
    assert (secure.attributes or {})["attune.classification"] == "CLASSIFICATION_SENSITIVE"


async def test_searches_are_spanned_in_both_services_without_their_query(
    stack: Stack, spans: SpanRecorder
) -> None:
    request = run_request(package_name=ANSWER)
    await run_to_end(stack.executor_stub(), request)
    spans.clear()
    response = await stack.executor_stub().SearchRuns(
        executor_pb2.SearchRunsRequest(
            query=QUERY_WORD, filter='template_id = "python_package_publish"'
        ),
        timeout=10,
        metadata=TRACEPARENT,
    )
    got = finished(spans)
    server = one(got, SEARCH_RUNS, SpanKind.SERVER)
    (search,) = children(got, server, "attune.search")
    assert search.attributes == {
        "attune.namespace": "default",
        "attune.mode": "SEARCH_RUNS_MODE_UNSPECIFIED",
        "attune.source": "SEARCH_SOURCE_MEMORY",
        "attune.degraded": False,
        "attune.hits": len(response.hits),
    }
    (client,) = children(got, search, SEARCH_PATTERNS)
    (memory,) = children(got, client, SEARCH_PATTERNS)
    (memory_search,) = children(got, memory, "attune.search")
    values = memory_search.attributes or {}
    assert values["attune.namespace"] == "default"
    assert values["attune.results"] == len(response.hits)
    for span in got:
        assert not [text for text in texts(span) if QUERY_WORD in text], span.name


async def test_errors_carry_their_codes_and_server_faults_are_errors(
    stack: Stack, spans: SpanRecorder
) -> None:
    # A client's mistake: the code is recorded, the server span stays unset.
    secret = memory_pb2.StorePatternRequest(
        namespace="team",
        pattern=memory_pb2.Pattern(
            id="leaky", type=memory_pb2.PATTERN_TYPE_INSIGHT, content=f"key {SECRET} here"
        ),
    )
    assert await code_of(stack.memory_stub().StorePattern(secret, timeout=5)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    got = await spans.ended(has_server_span(STORE_PATTERN))
    server = one(got, STORE_PATTERN, SpanKind.SERVER)
    assert (server.attributes or {})[
        "rpc.grpc.status_code"
    ] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert server.status.status_code == StatusCode.UNSET
    (secure,) = children(got, server, "attune.write.secure")
    assert secure.status.status_code == StatusCode.ERROR
    assert (secure.attributes or {})["error.type"] == "INVALID_ARGUMENT"

    # The memory service gone: the executor's search answers UNAVAILABLE in
    # memory mode, a fault on both its server span and its client span.
    await stack.stop_memory()
    spans.clear()
    only_memory = executor_pb2.SearchRunsRequest(
        query="release", mode=executor_pb2.SEARCH_RUNS_MODE_MEMORY
    )
    assert await code_of(stack.executor_stub().SearchRuns(only_memory, timeout=10)) == (
        grpc.StatusCode.UNAVAILABLE
    )
    got = await spans.ended(has_server_span(SEARCH_RUNS))
    server = one(got, SEARCH_RUNS, SpanKind.SERVER)
    assert server.status.status_code == StatusCode.ERROR
    assert (server.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    (search,) = children(got, server, "attune.search")
    assert search.status.status_code == StatusCode.ERROR
    (client,) = children(got, search, SEARCH_PATTERNS)
    assert client.status.status_code == StatusCode.ERROR
    assert (client.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]


async def test_no_span_carries_answers_pattern_text_queries_or_secrets(
    stack: Stack, spans: SpanRecorder
) -> None:
    executor = stack.executor_stub()
    memory = stack.memory_stub()
    # An answer holding a secret is refused; one without is run and stored.
    refused = run_request(package_name=f"pkg {SECRET}")
    assert await code_of(run_to_end(executor, refused)) == grpc.StatusCode.INVALID_ARGUMENT
    await run_to_end(executor, run_request(package_name=ANSWER))
    # A secret memory refuses, a SENSITIVE pattern it seals, searches of both sides.
    leaky = memory_pb2.Pattern(id="leaky", type=memory_pb2.PATTERN_TYPE_INSIGHT, content=SECRET)
    assert await code_of(
        memory.StorePattern(memory_pb2.StorePatternRequest(namespace="team", pattern=leaky))
    ) == (grpc.StatusCode.INVALID_ARGUMENT)
    sensitive = memory_pb2.Pattern(
        id="private",
        type=memory_pb2.PATTERN_TYPE_INSIGHT,
        content=SENSITIVE_TEXT,
        classification=common_pb2.CLASSIFICATION_SENSITIVE,
    )
    await memory.StorePattern(memory_pb2.StorePatternRequest(namespace="team", pattern=sensitive))
    await memory.SearchPatterns(
        memory_pb2.SearchPatternsRequest(namespace="team", query=QUERY_WORD)
    )
    await executor.SearchRuns(executor_pb2.SearchRunsRequest(query=ANSWER))
    got = finished(spans)
    assert {"attune.attempt", "attune.write.encrypt", "attune.search"} <= {s.name for s in got}
    forbidden = (ANSWER, SECRET, SENSITIVE_TEXT, QUERY_WORD, "quokka")
    for span in got:
        carried = (
            " ".join(texts(span))
            + " "
            + " ".join(str(v) for v in span.resource.attributes.values())
        )
        assert not [word for word in forbidden if word in carried], (span.name, span.attributes)


async def test_error_messages_quoting_the_request_stay_off_every_span(
    stack: Stack, spans: SpanRecorder
) -> None:
    """An error's message may quote what was sent (a refused answer, a filter
    literal); the caller sees it, no exported span does: not a client span's
    status, not an exception event, not a stacktrace."""
    recorded = unredacted_recorder()
    executor = stack.executor_stub()
    refused = run_request(version_bump="quokka-bump")
    with pytest.raises(grpc.aio.AioRpcError) as answer_error:
        await run_to_end(executor, refused)
    assert answer_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "quokka-bump" in (answer_error.value.details() or "")  # The caller is told.

    # Memory refusing a filter to an instrumented client, as the executor's
    # channel is: the library records memory's message on its client span.
    async with grpc.aio.insecure_channel(
        stack.memory_address, interceptors=client_interceptors()
    ) as channel:
        bad = memory_pb2.SearchPatternsRequest(namespace="team", filter='quokkafield = "x"')
        with pytest.raises(grpc.aio.AioRpcError) as filter_error:
            await memory_pb2_grpc.MemoryServiceStub(channel).SearchPatterns(bad, timeout=10)
    assert filter_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "quokkafield" in (filter_error.value.details() or "")

    both_ended = lambda ended: (  # noqa: E731 (a condition, read twice)
        has_server_span(RUN_WORKFLOW)(ended) and has_server_span(SEARCH_PATTERNS)(ended)
    )
    got = await spans.ended(both_ended)
    raw = await recorded.ended(both_ended)

    # As recorded, the client span quotes memory's message: redaction has work here.
    client = one(raw, SEARCH_PATTERNS, SpanKind.CLIENT)
    assert "quokkafield" in " ".join(texts(client))
    # The services' own aborts chain no message into a recorded stacktrace.
    for server in (
        one(raw, RUN_WORKFLOW, SpanKind.SERVER),
        one(raw, SEARCH_PATTERNS, SpanKind.SERVER),
    ):
        assert server.events, server.name  # The abort is recorded...
        assert "quokka" not in " ".join(texts(server)), server.name  # ...without the message.

    # As exported: no span carries either, and errors keep their type only.
    assert one(got, SEARCH_PATTERNS, SpanKind.CLIENT).status.status_code == StatusCode.ERROR
    assert one(got, SEARCH_PATTERNS, SpanKind.CLIENT).status.description == "INVALID_ARGUMENT"
    for span in got:
        assert "quokka" not in " ".join(texts(span)), (span.name, span.status, span.events)
        for event in span.events:
            if event.name == "exception":
                assert set(event.attributes or {}) <= {"exception.type", "exception.escaped"}


async def test_a_template_id_is_spanned_only_once_it_names_a_template(
    stack: Stack, spans: SpanRecorder
) -> None:
    unknown = executor_pb2.RunWorkflowRequest(template_id="quokka-template")
    assert await code_of(run_to_end(stack.executor_stub(), unknown)) == grpc.StatusCode.NOT_FOUND
    got = await spans.ended(has_server_span(RUN_WORKFLOW))
    validate = one(got, "attune.validate")
    assert validate.status.status_code == StatusCode.ERROR
    assert "attune.template_id" not in (validate.attributes or {})
    assert not [span.name for span in got if "quokka" in " ".join(texts(span))]
