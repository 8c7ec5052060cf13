"""Which runners and tier strategies a caller may use is policy, not a request field
(issue 11): asking for more is PERMISSION_DENIED before any model is called."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import grpc
import pytest
from pydantic import SecretStr

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from tests.support.executor_callers import bearer, error_info, write_executor_tokens
from tests.support.fake_llm_server import FakeLLMServer, Scripted, openai_completion
from tests.support.helpers import run_request
from tests.support.stack import Stack, running_stack

CALLERS = {
    "vic": ("vic", "viewer"),
    "rita": ("rita", "runner"),
    "ada": ("ada", "admin"),
}
# The model's verdict; what matters here is whether it is asked at all.
ANSWER = json.dumps({"status": "success", "criteria": {}, "summary": "done"})


@pytest.fixture
def model_api() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        server.script(Scripted(body=openai_completion(ANSWER)))
        yield server


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    return write_executor_tokens(tmp_path / "tokens.yaml", CALLERS)


def paid_stack(
    root: Path, tokens_file: Path, model_api: FakeLLMServer, **settings: object
) -> AbstractAsyncContextManager[Stack]:
    """A stack with authentication on and both model runners configured,
    against the fake model API."""
    return running_stack(
        root,
        tokens_file=tokens_file,
        openai_api_key=SecretStr("sk-test-policy"),
        openai_base_url=model_api.url,
        anthropic_api_key=SecretStr("sk-ant-test-policy"),
        anthropic_base_url=model_api.url,
        **settings,
    )


def paid_request(runner: common_pb2.Runner.ValueType) -> executor_pb2.RunWorkflowRequest:
    request = run_request(package_name="demo")
    request.runner = runner
    request.tier_strategy = common_pb2.TIER_STRATEGY_PREMIUM_ONLY
    return request


async def finished(
    stack: Stack, request: executor_pb2.RunWorkflowRequest, token: str
) -> executor_pb2.Run:
    stub = stack.executor_stub()
    events = [e async for e in stub.RunWorkflow(request, metadata=bearer(token), timeout=30)]
    return events[-1].run_finished.run


async def denied(
    stack: Stack, request: executor_pb2.RunWorkflowRequest, token: str
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await finished(stack, request, token)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    return caught.value


def run_dirs(stack: Stack) -> list[Path]:
    runs = stack.root / "executor" / "runs"
    return [path for path in runs.iterdir() if not path.name.startswith(".")]


async def test_a_runner_asking_for_a_paid_runner_at_premium_only_is_denied_and_no_model_is_called(
    tmp_path: Path, model_api: FakeLLMServer, tokens: dict[str, str]
) -> None:
    # The reproduction: five runs at premium_only on a paid runner,
    # overriding a simulated default, made 25 premium-model calls.
    async with paid_stack(
        tmp_path, tmp_path / "tokens.yaml", model_api, runner="simulated"
    ) as stack:
        for runner in (common_pb2.RUNNER_OPENAI, common_pb2.RUNNER_ANTHROPIC) * 3:
            error = await denied(stack, paid_request(runner), tokens["rita"])
            info = error_info(error)
            assert (info.domain, info.reason) == ("executor.attune", "RUNNER_NOT_ALLOWED")
            name = "openai" if runner == common_pb2.RUNNER_OPENAI else "anthropic"
            assert dict(info.metadata) == {"role": "runner", "runner": name}
            assert "allowed: simulated (EXECUTOR_ALLOWED_RUNNERS)" in (error.details() or "")
        # The allowed runner, at a strategy the role may not choose.
        error = await denied(stack, paid_request(common_pb2.RUNNER_SIMULATED), tokens["rita"])
        info = error_info(error)
        assert info.reason == "TIER_STRATEGY_NOT_ALLOWED"
        assert dict(info.metadata) == {"role": "runner", "strategy": "premium_only"}
        # A viewer may run nothing at all.
        await denied(stack, run_request(package_name="demo"), tokens["vic"])
        assert model_api.requests == []
        assert run_dirs(stack) == []  # nothing written

        # What the role may do, it does.
        request = run_request(package_name="demo")
        request.tier_strategy = common_pb2.TIER_STRATEGY_PROGRESSIVE
        run = await finished(stack, request, tokens["rita"])
        assert (run.runner, run.owner) == (common_pb2.RUNNER_SIMULATED, "rita")
        assert model_api.requests == []

        # An admin may ask for anything.
        run = await finished(stack, paid_request(common_pb2.RUNNER_OPENAI), tokens["ada"])
        assert run.runner == common_pb2.RUNNER_OPENAI
        attempts = [attempt for agent in run.agents for attempt in agent.attempts]
        assert attempts
        assert {attempt.tier for attempt in attempts} == {common_pb2.TIER_PREMIUM}
        assert len(model_api.requests) == len(attempts)


async def test_a_paid_default_runner_counts_as_asked_for(
    tmp_path: Path, model_api: FakeLLMServer, tokens: dict[str, str]
) -> None:
    # auto with an Anthropic key resolves to anthropic: a runner naming no
    # runner would spend on it, so it must be allowed as if named.
    tokens_file = tmp_path / "tokens.yaml"
    async with paid_stack(tmp_path / "a", tokens_file, model_api, runner="auto") as stack:
        error = await denied(stack, run_request(package_name="demo"), tokens["rita"])
        assert error_info(error).metadata["runner"] == "anthropic"
        assert "the executor's default, EXECUTOR_RUNNER=auto" in (error.details() or "")
        assert model_api.requests == []
    async with paid_stack(
        tmp_path / "b",
        tokens_file,
        model_api,
        runner="openai",
        allowed_runners={"runner": ["simulated", "openai"]},
    ) as stack:
        run = await finished(stack, run_request(package_name="demo"), tokens["rita"])
        assert run.runner == common_pb2.RUNNER_OPENAI
        assert model_api.requests
