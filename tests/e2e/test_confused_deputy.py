"""The executor as a confused deputy, reproduced against real processes.

Both services run as processes with authentication on: the memory service
trusts the executor (`svc:executor`, a writer of `default` with
`delegate: true`), and the executor knows its callers (alice and bob,
runners; carol, a viewer). Before callers were authenticated and the
executor acted for them at the memory service, anyone reached memory with
the executor's own rights: a call without a token found another user's
SENSITIVE run, a guessed session id read another user's choices, and any
caller could ask for paid runners at premium tiers.

Each reproduction runs with the memory service up and then down (stopped
once, after every "up" case: see `memory`), and the searches in every
SearchRuns mode. MEMORY mode with the memory service down is UNAVAILABLE,
which hides the run just as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.dev.stack import ServiceProcess, executor_process, memory_process
from executor_service.runs.forms import from_form_value
from tests.support.helpers import (
    Answer,
    Users,
    error_info,
    eventually,
    run_request,
    write_tokens_file,
)

pytestmark = pytest.mark.e2e

T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]

# Made-up tokens for these tests only; the tokens files hold their hashes.
# Each service has its own: a caller's executor token is no memory token.
MEMORY_TOKENS = {
    "svc:executor": "svc-executor-memory-token-0123456789ab",
    "alice": "alice-memory-token-0123456789abcdef",
    "bob": "bob-memory-token-0123456789abcdefgh",
}
MEMORY_USERS: Users = {
    "svc:executor": ("writer", ["default"]),
    "alice": ("reader", ["default"]),
    "bob": ("reader", ["default"]),
}
EXECUTOR_TOKENS = {
    "alice": "alice-executor-token-0123456789abcdef",
    "bob": "bob-executor-token-0123456789abcdefgh",
    "carol": "carol-executor-token-0123456789abcdef",
}
EXECUTOR_USERS: Users = {
    "alice": ("runner", ["default"]),
    "bob": ("runner", ["default"]),
    "carol": ("viewer", ["default"]),
}

# A sensitive term makes alice's run SENSITIVE; the made-up word finds it.
SENSITIVE_WORD = "quizzleflomp"
SENSITIVE_NAME = f"confidential {SENSITIVE_WORD} exporter"
# Its plain twin, which everyone may find: the searches do reach alice's runs.
PLAIN_WORD = "wobblesnark"
SESSION = "s-1"
PRIVATE_PACKAGE = "acme-internal-ledger"
TYPOSQUAT = "acme-internai-ledger"
MODES = [
    executor_pb2.SEARCH_RUNS_MODE_AUTO,
    executor_pb2.SEARCH_RUNS_MODE_MEMORY,
    executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES,
    executor_pb2.SEARCH_RUNS_MODE_HYBRID,
]
MODE_IDS = [
    executor_pb2.SearchRunsMode.Name(mode).removeprefix("SEARCH_RUNS_MODE_") for mode in MODES
]
UP, DOWN = "memory-up", "memory-down"


@dataclass
class Pair:
    """The running services, and alice's runs made while memory was up."""

    memory: ServiceProcess
    executor: ServiceProcess
    channel: grpc.Channel
    sensitive_run: str = ""
    plain_run: str = ""

    def stub(self) -> executor_pb2_grpc.ExecutorServiceStub:
        return executor_pb2_grpc.ExecutorServiceStub(self.channel)


def auth(user: str | None) -> Metadata:
    """An executor caller's metadata; None sends no token at all."""
    return () if user is None else (("authorization", f"Bearer {EXECUTOR_TOKENS[user]}"),)


def refused(call: Callable[..., object], *args: object) -> grpc.RpcError:
    """The error `call(*args)` raises."""
    with pytest.raises(grpc.RpcError) as raised:
        call(*args)
    return raised.value


def polled(probe: Callable[[], T], accept: Callable[[T], bool]) -> T:
    """probe() once accept holds, from a thread (the stubs are blocking)."""

    async def probe_async() -> T:
        return await asyncio.to_thread(probe)

    return asyncio.run(eventually(probe_async, accept, within=20.0))


def finished_run(
    pair: Pair, user: str | None, request: executor_pb2.RunWorkflowRequest
) -> executor_pb2.Run:
    events = list(pair.stub().RunWorkflow(request, metadata=auth(user), timeout=30))
    assert events[-1].HasField("run_finished"), events[-1]
    return events[-1].run_finished.run


def session_run(package_name: str) -> executor_pb2.RunWorkflowRequest:
    request = run_request(package_name=package_name)
    request.session_id = SESSION
    return request


def search(
    pair: Pair,
    user: str | None,
    mode: executor_pb2.SearchRunsMode.ValueType,
    query: str = SENSITIVE_WORD,
) -> executor_pb2.SearchRunsResponse:
    request = executor_pb2.SearchRunsRequest(query=query, mode=mode, page_size=100)
    response: executor_pb2.SearchRunsResponse = pair.stub().SearchRuns(
        request, metadata=auth(user), timeout=10
    )
    return response


def session_suggestions(pair: Pair, user: str) -> list[Answer]:
    """The package names GetRecommendations suggests to `user` for SESSION."""
    request = executor_pb2.GetRecommendationsRequest(
        template_id="python_package_publish", session_id=SESSION
    )
    response = pair.stub().GetRecommendations(request, metadata=auth(user), timeout=10)
    return [
        value
        for suggestion in response.suggested_answers
        if suggestion.question_id == "package_name"
        and (value := from_form_value(suggestion.value)) is not None
    ]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Both services with authentication on, and alice's runs: a SENSITIVE one,
    and one under SESSION naming her private package."""
    root = tmp_path_factory.mktemp("confused-deputy")
    memory_tokens = write_tokens_file(
        root / "memory-tokens.yaml", MEMORY_USERS, MEMORY_TOKENS, delegates=["svc:executor"]
    )
    executor_tokens = write_tokens_file(
        root / "executor-tokens.yaml", EXECUTOR_USERS, EXECUTOR_TOKENS
    )
    with (
        (root / "memory.log").open("w") as memory_log,
        (root / "executor.log").open("w") as executor_log,
    ):
        memory = memory_process(
            root, log=memory_log, auth_disabled=False, TOKENS_FILE=str(memory_tokens)
        )
        executor: ServiceProcess | None = None
        try:
            memory.start()
            executor = executor_process(
                root,
                memory.address,
                log=executor_log,
                auth_disabled=False,
                TOKENS_FILE=str(executor_tokens),
                MEMORY_TOKEN=MEMORY_TOKENS["svc:executor"],
                # The refusals here are the point: none may be throttled.
                DENIED_CALLS_BURST="10000",
            ).start()
            with grpc.insecure_channel(executor.address) as channel:
                running = Pair(memory, executor, channel)
                secret = finished_run(running, "alice", run_request(package_name=SENSITIVE_NAME))
                assert secret.pattern_delivery == executor_pb2.PATTERN_DELIVERY_STORED
                running.sensitive_run = secret.run_id
                plain = finished_run(running, "alice", run_request(package_name=f"{PLAIN_WORD} x"))
                assert plain.pattern_delivery == executor_pb2.PATTERN_DELIVERY_STORED
                running.plain_run = plain.run_id
                finished_run(running, "alice", session_run(PRIVATE_PACKAGE))
                # The session write is a background task: alice sees it once stored.
                polled(
                    lambda: session_suggestions(running, "alice"), lambda v: v == [PRIVATE_PACKAGE]
                )
                yield running
        finally:
            if executor is not None:
                executor.kill()
            memory.kill()


@pytest.fixture(scope="module", params=[UP, DOWN])
def memory(request: pytest.FixtureRequest, pair: Pair) -> str:
    """The memory service's state for a test. A module-scoped parameter, so
    pytest runs every "up" case, then stops the memory service once."""
    state: str = request.param
    if state == DOWN:
        assert pair.memory.terminate() == 0
    elif pair.memory.process is not None and pair.memory.process.poll() is not None:
        pair.memory.restart()  # Only when pytest was told to run "down" first.
    return state


def hit_ids(response: executor_pb2.SearchRunsResponse) -> list[str]:
    return [hit.run_id for hit in response.hits]


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_search_runs_without_a_token_is_unauthenticated(
    pair: Pair, memory: str, mode: executor_pb2.SearchRunsMode.ValueType
) -> None:
    try:
        leaked = hit_ids(search(pair, None, mode))
    except grpc.RpcError as error:
        code = error.code()
    else:
        # Before callers were authenticated: answered with the executor's own rights.
        pytest.fail(
            f"answered without a token; alice's SENSITIVE run found: {pair.sensitive_run in leaked}"
        )
    assert code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_a_sensitive_run_is_found_by_its_owner_only(
    pair: Pair, memory: str, mode: executor_pb2.SearchRunsMode.ValueType
) -> None:
    if memory == DOWN and mode == executor_pb2.SEARCH_RUNS_MODE_MEMORY:
        # Memory only, and it is down: no one gets an answer, the run stays hidden.
        for user in ("bob", "carol", "alice"):
            error = refused(search, pair, user, mode)
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
        return
    for other in ("bob", "carol"):
        found = hit_ids(search(pair, other, mode))
        assert pair.sensitive_run not in found, (other, found)
        # The same search reaches alice's runs: only the SENSITIVE one is hidden.
        assert hit_ids(search(pair, other, mode, PLAIN_WORD)) == [pair.plain_run]
    own = search(pair, "alice", mode)
    assert pair.sensitive_run in hit_ids(own)
    if memory == UP and mode != executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES:
        # The memory service found it for her: delegation made her its owner there.
        memory_only = search(pair, "alice", executor_pb2.SEARCH_RUNS_MODE_MEMORY)
        assert memory_only.source == executor_pb2.SEARCH_SOURCE_MEMORY
        assert pair.sensitive_run in hit_ids(memory_only)
    else:
        assert own.source == executor_pb2.SEARCH_SOURCE_LOCAL_FILES


def test_get_run_and_list_runs_hide_a_sensitive_run_from_others(pair: Pair, memory: str) -> None:
    stub = pair.stub()

    def get_run(user: str | None) -> executor_pb2.Run:
        get = executor_pb2.GetRunRequest(run_id=pair.sensitive_run)
        response = stub.GetRun(get, metadata=auth(user), timeout=10)
        return response.run

    assert get_run("alice").owner == "alice"
    anonymous = refused(get_run, None)
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
    for other in ("bob", "carol"):
        hidden = refused(get_run, other)
        assert hidden.code() == grpc.StatusCode.NOT_FOUND, hidden

    def listed(user: str) -> list[str]:
        response = stub.ListRuns(
            executor_pb2.ListRunsRequest(page_size=100), metadata=auth(user), timeout=10
        )
        return [run.run_id for run in response.runs]

    assert pair.sensitive_run in listed("alice")
    for other in ("bob", "carol"):
        assert pair.sensitive_run not in listed(other)


def test_a_guessed_session_id_reads_and_writes_nothing_of_another_user(
    pair: Pair, memory: str
) -> None:
    assert PRIVATE_PACKAGE not in session_suggestions(pair, "bob")
    anonymous = refused(finished_run, pair, None, session_run(TYPOSQUAT))
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
    # Bob plants a typosquatted name under alice's session id.
    finished_run(pair, "bob", session_run(TYPOSQUAT))
    if memory == UP:
        # Stored, as bob's own choice: he gets it back, and only it.
        assert polled(lambda: session_suggestions(pair, "bob"), bool) == [TYPOSQUAT]
        assert session_suggestions(pair, "alice") == [PRIVATE_PACKAGE]
    else:
        # The session lives in memory: no suggestion at all, and no one else's.
        assert session_suggestions(pair, "bob") == []
        assert session_suggestions(pair, "alice") == []


def test_a_runner_may_not_ask_for_a_paid_runner_at_premium_only(pair: Pair, memory: str) -> None:
    request = run_request(package_name="demo")
    request.runner = common_pb2.RUNNER_OPENAI
    request.tier_strategy = common_pb2.TIER_STRATEGY_PREMIUM_ONLY
    anonymous = refused(finished_run, pair, None, request)
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
    for runner in ("alice", "bob"):
        denied = refused(finished_run, pair, runner, request)
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED, denied
        info = error_info(denied)
        assert (info.reason, dict(info.metadata)) == (
            "RUNNER_NOT_ALLOWED",
            {"role": "runner", "runner": "openai"},
        )
