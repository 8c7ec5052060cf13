"""A fuzz suite over every RPC of both services, generated from the proto descriptors.

The memory service runs with authentication on (a tokens file), the executor
points at it with its own token; both are real servers on 127.0.0.1 port 0,
serving from a background event loop while hypothesis drives them through
plain (synchronous) channels. Each RPC gets well-typed random requests with
boundary values (tests/support/proto_strategies.py), damaged encodings and bytes that
do not decode, mostly from an admin caller so calls pass the gate and reach
the handlers, sometimes from a narrower one, without a token or with a bad one.
Every paged answer's next-page token is also sent back forged to offsets past
int64, since only a token issued for that very query gets past its check.

Every answer must be a clean status: never UNKNOWN, INTERNAL, UNAVAILABLE
(a crashed server) or DEADLINE_EXCEEDED (a call that hangs), never a
traceback or an exception's class in a message. After each RPC's run both
services still answer health SERVING and a cheap call. Calls and the worst
latency per RPC are printed and written to a JSON results file.

`ATTUNE_FUZZ_EXAMPLES` (default 120 per RPC) and `ATTUNE_FUZZ_HUGE` (the
length of huge strings, default 4,000) raise the effort: `make fuzz` runs
thousands per RPC with strings past every size limit. `ATTUNE_FUZZ_RESULTS`
names the results file (default: in pytest's temporary directory);
`ATTUNE_FUZZ_CALL_DEADLINE` bounds each call (30 s) and
`ATTUNE_FUZZ_TEST_TIMEOUT` each RPC's run (300 s; 0 for none).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.runs.forms import to_form_value
from executor_service.runs.query import RUN_SCHEMA
from executor_service.templates.catalog import load_catalog
from memory_service.access.audit import AUDIT_SCHEMA
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.servicekit.paging import encode_cursor, encode_token
from tests.support.proto_strategies import MessageStrategies, Strategy, mutated, texts, undecodable
from tests.support.secured_memory import TEAM_A, TEAM_B
from tests.support.secured_pair import (
    EXECUTOR,
    MEMORY,
    SecuredPair,
    every_method,
    method_path,
    secured_pair,
)

EXAMPLES = int(os.environ.get("ATTUNE_FUZZ_EXAMPLES", "120"))
HUGE = int(os.environ.get("ATTUNE_FUZZ_HUGE", "4000"))
RESULTS = os.environ.get("ATTUNE_FUZZ_RESULTS", "")
CALL_DEADLINE = float(os.environ.get("ATTUNE_FUZZ_CALL_DEADLINE", "30"))
# Seconds one RPC's whole run may take (0: no limit, for long runs).
TEST_TIMEOUT = int(os.environ.get("ATTUNE_FUZZ_TEST_TIMEOUT", "300"))

# Codes that mean the server failed, not the caller: a bug, a crash, a hang.
UNCLEAN = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
LEAKS = ("Traceback", "Unexpected <class", "Error'>", 'File "')

# More than a default page of each, so answers carry next-page tokens to forge.
SEEDED_PATTERNS = (*(f"p-{n}" for n in range(60)), "p-sensitive")
NAMESPACES = (TEAM_A, TEAM_A, TEAM_B, "default")
# Callers by weight: mostly an admin of every namespace, so calls reach the handlers.
CALLERS = ("root", "root", "root", "root", "alice", "carol", "dave", "", "bad")

Metadata = tuple[tuple[str, str], ...]


def _pathological(size: int) -> list[str]:
    # Inputs that were slow on the base commit (issue 10, findings 1-3).
    return [
        "http://a.example/?" + "key" * (size // 3),
        "a=" + "b&c=" * (size // 4),
        " ".join(f"w{i}x" for i in range(size // 5)),
    ]


# Filters that compile, so the requests carrying them go past validation.
VALID_FILTERS = [
    "",
    "type = INSIGHT",
    'tags:"uploads"',
    'create_time > "2020-01-01T00:00:00Z"',
    "total_cost_usd >= 0",
    "pinned = false",
    'template_id = "python_package_publish"',
]


def _literals() -> Strategy:
    texts = st.text(st.characters(codec="utf-8"), max_size=12)
    return st.one_of(
        texts.map(json.dumps),
        texts.map(lambda text: json.dumps(text, ensure_ascii=False)),
        st.sampled_from(
            [
                '"\\ud800"',  # JSON escapes of lone surrogates (issue 10, finding 7).
                '"\\udfff\\ud800x"',
                '"\\u0000"',
                '"1969-12-31T23:59:59.5Z"',  # Fractional before 1970 (finding 10).
                '"0001-01-01T00:00:00Z"',
                '"9999-12-31T23:59:59.999999999Z"',
                '"10000-01-01T00:00:00Z"',
                "1e400",
                "-0",
                "9223372036854775808",
                "-9223372036854775809",
                "NaN",
                "true",
                "*",
                "INSIGHT",
                "CAPABLE",
                "SENSITIVE",
            ]
        ),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
    )


@st.composite
def filters(draw: Callable[[Strategy], Any]) -> str:
    """AIP-160 filters over the fields of patterns, runs and audit records, right or wrong."""
    paths = [*PATTERN_SCHEMA.fields, *RUN_SCHEMA.fields, *AUDIT_SCHEMA.fields, "nope"]
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths)).replace(".*", ".x")
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", ":"]))
        negate = draw(st.sampled_from(["", "", "NOT ", "-"]))
        parts.append(f"{negate}{path} {op} {draw(_literals())}")
    joiner: str = draw(st.sampled_from([" AND ", " OR ", " "]))
    return joiner.join(parts)


def _page_tokens() -> Strategy:
    # Forged tokens this service could have issued, with offsets past int64 (finding 8).
    scopes = ["templates", *(f"{namespace}||" for namespace in NAMESPACES)]
    offsets = st.sampled_from([2**63, 2**64, 10**30, 2**31, -1])
    forged = st.builds(encode_token, offsets, st.sampled_from(scopes))
    cursors = st.builds(encode_cursor, st.sampled_from(["zzzz", "\U0010ffff"]), st.just(""))
    return st.one_of(forged, cursors, st.sampled_from(["", "e30", "%%%", "a" * 600]))


def forged_pages(token: str) -> list[tuple[int, str]]:
    """A real next-page token with its offset pushed past int64 (issue 10, finding 8).

    Tokens are bound to their query, so only a token the service issued for
    this very request reaches the paging code behind that check.
    """
    if not token:
        return []
    data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    if "o" not in data:
        return []  # A cursor, not an offset.
    forged = []
    for offset in (2**63, 2**64 + 1, 10**30):
        raw = json.dumps({**data, "o": offset}).encode()
        forged.append((offset, base64.urlsafe_b64encode(raw).decode().rstrip("=")))
    return forged


# Hinted fields a request usually leaves empty.
OPTIONAL_HINTS = ("page_token", "filter", "order_by", "group_by", "runner", "session_id")


# Content the write pipeline must refuse or scrub: a secret, an email, an SSN.
TOUCHY = [
    "key AKIAZ7Q4M2W8R5T1Y6UX here",
    "mail victim.person@example.org now",
    "ssn 078-05-1120",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----",
]


@st.composite
def patterns(draw: Callable[[Strategy], Any], text: Strategy) -> memory_pb2.Pattern:
    """Patterns valid but for their free text, so stores reach the write pipeline."""
    content: str = draw(st.one_of(text, st.sampled_from(TOUCHY), texts(HUGE)))
    return memory_pb2.Pattern(
        id=draw(st.sampled_from(["p-1", "p-new", "p-sensitive", "p-other"])),
        type=draw(st.sampled_from(memory_pb2.PatternType.values()[1:])),
        classification=draw(st.sampled_from(common_pb2.Classification.values()[1:])),
        content=content,
        tags=draw(st.lists(st.one_of(st.sampled_from(TOUCHY), texts(40)), max_size=3)),
        template_id=draw(st.sampled_from(["", "python_package_publish"])),
    )


def hints(run_ids: list[str]) -> dict[str, Strategy]:
    """Field values (by field name, in any message) that pass validation often."""
    catalog = load_catalog(None).catalog
    templates = [template.id for template in catalog.all()]
    questions = sorted({q.id for t in catalog.all() for q in t.questions})
    words = ["uploads", "retry backoff", "python package publish", '"retry flaky"', "uplods"]
    text = st.sampled_from(words + _pathological(HUGE))
    return {
        "namespace": st.sampled_from(NAMESPACES),
        "pattern_id": st.sampled_from(["p-1", "p-2", "p-sensitive", "p-missing"]),
        "id": st.sampled_from(["p-1", "p-2", "p-sensitive", "p-new"]),
        "template_id": st.sampled_from(templates),
        "run_id": st.sampled_from(run_ids or ["r-none"]),
        "session_id": st.sampled_from(["s-1", "s-2"]),
        "key": st.sampled_from(["k-1", "k-2"]),
        "runner": st.sampled_from(["simulated", "anthropic", "openai", "nope"]),
        "query": text,
        "content": text,
        "value": text,
        "filter": st.one_of(st.sampled_from(VALID_FILTERS), filters()),
        "order_by": st.sampled_from(["", "create_time desc", "id", "total_cost_usd, id", "nope"]),
        "group_by": st.sampled_from(["template_id", "agents.tier", "tags", "nope"]),
        "page_token": _page_tokens(),
        "answers[]": st.sampled_from(questions),
        "form_responses[]": st.sampled_from(questions),
        "tier_distribution[]": st.sampled_from(["cheap", "capable", "premium"]),
        "pattern": patterns(text),
    }


@dataclass
class Tally:
    """What one RPC's calls came to."""

    calls: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    worst_ms: float = 0.0
    worst_request_bytes: int = 0
    refusals: Counter[str] = field(default_factory=Counter)

    def add(self, code: grpc.StatusCode, seconds: float, size: int, message: str) -> None:
        self.calls += 1
        self.codes[code.name] += 1
        if code is not grpc.StatusCode.OK:
            self.refusals[f"{code.name}: {message[:100]}"] += 1
        if seconds * 1000 > self.worst_ms:
            self.worst_ms, self.worst_request_bytes = round(seconds * 1000, 1), size


class Background:
    """The secured pair, serving from its own event loop in a thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._ready: concurrent.futures.Future[SecuredPair] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        self._done: concurrent.futures.Future[None] | None = None

    async def _serve(self) -> None:
        try:
            self._stop = asyncio.Event()
            # A refused-calls budget past any run's count: every call reaches
            # the decoder and its handler (the budget has tests of its own).
            generous = {"denied_calls_burst": 10**9}
            async with secured_pair(self.root, generous, runner="simulated") as pair:
                self._ready.set_result(pair)
                await self._stop.wait()
        except BaseException as error:
            if not self._ready.done():
                self._ready.set_exception(error)
            raise

    def start(self) -> SecuredPair:
        self.thread.start()
        self._done = asyncio.run_coroutine_threadsafe(self._serve(), self.loop)
        return self._ready.result(timeout=60)

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._done is not None:
            self._done.result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


class Fuzzer:
    """Sends requests to the running pair and judges the answers."""

    def __init__(self, pair: SecuredPair) -> None:
        self.tokens = pair.memory.tokens
        stack = pair.memory.stack
        self.channels = {
            MEMORY.full_name: grpc.insecure_channel(stack.memory_address),
            EXECUTOR.full_name: grpc.insecure_channel(stack.executor_address),
        }
        self.tallies: dict[str, Tally] = {}
        self.run_ids: list[str] = []

    def metadata(self, caller: str) -> Metadata:
        if caller == "bad":
            return (("authorization", "Bearer not-a-known-token"),)
        return (("authorization", f"Bearer {self.tokens[caller]}"),) if caller else ()

    def _channel(self, method: MethodDescriptor) -> grpc.Channel:
        return self.channels[method.containing_service.full_name]

    def call(self, method: MethodDescriptor, body: bytes, caller: str) -> None:
        """Sends one request, then forged next pages of its answer; fails on an unclean answer."""
        answer = self._send(method, body, caller)
        if answer is None or method.server_streaming:
            return
        token = getattr(
            GetMessageClass(method.output_type).FromString(answer), "next_page_token", ""
        )
        for offset, forged in forged_pages(token):
            request = GetMessageClass(method.input_type).FromString(body)
            setattr(request, "page_token", forged)  # noqa: B010 - a field named at run time.
            note = f"(its next page, the token forged to offset {offset}: {forged!r})"
            self._send(method, request.SerializeToString(), caller, note)

    def _send(
        self, method: MethodDescriptor, body: bytes, caller: str, note: str = ""
    ) -> bytes | None:
        """The (last) answer of one call, or None if it failed cleanly."""
        channel, metadata = self._channel(method), self.metadata(caller)
        started = time.perf_counter()
        code, message, answer = grpc.StatusCode.OK, "", None
        # No serializers: the bytes go out as they are.
        send: Any = (channel.unary_stream if method.server_streaming else channel.unary_unary)(
            method_path(method)
        )
        try:
            if method.server_streaming:
                answers = list(send(body, metadata=metadata, timeout=CALL_DEADLINE))
                answer = answers[-1] if answers else None
            else:
                answer = send(body, metadata=metadata, timeout=CALL_DEADLINE)
        except grpc.RpcError as error:
            failed: Any = error
            code, message = failed.code(), failed.details() or ""
        elapsed = time.perf_counter() - started
        self.tallies.setdefault(method.full_name, Tally()).add(code, elapsed, len(body), message)
        assert code not in UNCLEAN, f"{method.full_name}: {code.name} {message[:300]!r} {note}"
        assert not any(leak in message for leak in LEAKS), f"{method.full_name}: {message!r}"
        return answer

    def seed(self) -> None:
        """Patterns and a run, so reads, searches, pages and run lookups find something."""
        memory = memory_pb2_grpc.MemoryServiceStub(self.channels[MEMORY.full_name])
        writes = [
            memory_pb2.StorePatternRequest(
                namespace=TEAM_A,
                pattern=memory_pb2.Pattern(
                    id=pattern_id,
                    type=memory_pb2.PATTERN_TYPE_INSIGHT,
                    content=f"retry flaky uploads with backoff {pattern_id}",
                    tags=["uploads"],
                    classification=3 if pattern_id == "p-sensitive" else 0,  # type: ignore[arg-type]
                ),
            )
            for pattern_id in SEEDED_PATTERNS
        ]
        stored = memory.BatchStorePatterns(
            memory_pb2.BatchStorePatternsRequest(requests=writes),
            metadata=self.metadata("alice"),
            timeout=30,
        )
        assert [result.code for result in stored.results] == [0] * len(writes), stored
        executor = executor_pb2_grpc.ExecutorServiceStub(self.channels[EXECUTOR.full_name])
        for event in executor.RunWorkflow(
            executor_pb2.RunWorkflowRequest(
                template_id="python_package_publish",
                answers={"package_name": to_form_value("demo")},
            ),
            timeout=30,
        ):
            if event.run_id and event.run_id not in self.run_ids:
                self.run_ids.append(event.run_id)

    def assert_healthy(self) -> None:
        """Both services SERVING, and a cheap call of each answers OK."""
        for service, channel in self.channels.items():
            health: Any = health_pb2_grpc.HealthStub(channel)
            for name in ("", service):
                answer = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING, (service, name)
        memory = memory_pb2_grpc.MemoryServiceStub(self.channels[MEMORY.full_name])
        # Each raises unless it answers OK.
        memory.CountPatterns(
            memory_pb2.CountPatternsRequest(namespace=TEAM_A),
            metadata=self.metadata("root"),
            timeout=5,
        )
        executor = executor_pb2_grpc.ExecutorServiceStub(self.channels[EXECUTOR.full_name])
        executor.GetStatus(executor_pb2.GetStatusRequest(), timeout=5)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def summary(self) -> dict[str, Any]:
        methods = {
            name: {
                "calls": tally.calls,
                "worst_ms": tally.worst_ms,
                "worst_request_bytes": tally.worst_request_bytes,
                "codes": dict(sorted(tally.codes.items())),
                "top_refusals": dict(tally.refusals.most_common(5)),
            }
            for name, tally in sorted(self.tallies.items())
        }
        worst = max(self.tallies.items(), key=lambda item: item[1].worst_ms, default=None)
        return {
            "examples_per_rpc": EXAMPLES,
            "huge": HUGE,
            "calls": sum(tally.calls for tally in self.tallies.values()),
            "worst_ms": worst[1].worst_ms if worst else 0.0,
            "worst_rpc": worst[0] if worst else "",
            "methods": methods,
        }


@pytest.fixture(scope="module")
def fuzzer(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Fuzzer]:
    """The running pair, seeded; at the end, the tallies printed and written."""
    root = tmp_path_factory.mktemp("fuzz")
    background = Background(root)
    pair = background.start()
    running = Fuzzer(pair)
    try:
        running.seed()
        yield running
    finally:
        running.close()
        background.stop()
        summary = running.summary()
        target = Path(RESULTS) if RESULTS else root / "fuzz-results.json"
        target.write_text(json.dumps(summary, indent=2) + "\n")
        per_rpc = ", ".join(
            f"{n.rsplit('.', 1)[1]}={m['calls']}" for n, m in summary["methods"].items()
        )
        line = (
            f"fuzz: {summary['calls']} calls ({per_rpc}); worst latency "
            f"{summary['worst_ms']} ms ({summary['worst_rpc']}); results in {target}"
        )
        # Past output capture, so `make test` and `make fuzz` show it.
        capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
        reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
        if capture is not None and reporter is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)


def requests_for(method: MethodDescriptor, strategies: MessageStrategies) -> Strategy:
    """Well-typed requests (most often), damaged encodings and undecodable bytes."""
    encoded = strategies.messages(method.input_type).map(
        lambda message: message.SerializeToString()
    )
    damaged, garbage = mutated(encoded), undecodable()
    # By weight: eight in ten well-typed, one damaged, one undecodable.
    return st.integers(0, 9).flatmap(lambda n: encoded if n < 8 else damaged if n == 8 else garbage)


@pytest.mark.timeout(TEST_TIMEOUT)
@pytest.mark.parametrize("method", every_method(), ids=lambda method: method.full_name)
def test_every_answer_is_a_clean_status(fuzzer: Fuzzer, method: MethodDescriptor) -> None:
    strategies = MessageStrategies(hints(fuzzer.run_ids), huge=HUGE, optional=OPTIONAL_HINTS)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(body=requests_for(method, strategies), caller=st.sampled_from(CALLERS))
    def one_call(body: bytes, caller: str) -> None:
        fuzzer.call(method, body, caller)

    one_call()
    fuzzer.assert_healthy()
    assert fuzzer.tallies[method.full_name].calls >= EXAMPLES
