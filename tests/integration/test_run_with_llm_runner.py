"""A whole run through the executor on the anthropic runner, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from tests.support.fake_llm_server import FakeLLMServer, Scripted, anthropic_message
from tests.support.helpers import eventually, run_request, run_to_end
from tests.support.stack import Stack, running_stack

API_KEY = "sk-ant-test-do-not-leak-4242"
# USD per million input/output tokens for the default tier models (prices.json).
PRICES = {
    common_pb2.TIER_CHEAP: (1.0, 5.0),
    common_pb2.TIER_CAPABLE: (3.0, 15.0),
    common_pb2.TIER_PREMIUM: (15.0, 75.0),
}


@pytest.fixture
def model_api() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
async def llm_stack(tmp_path: Path, model_api: FakeLLMServer) -> AsyncIterator[Stack]:
    async with running_stack(
        tmp_path,
        runner="auto",
        anthropic_api_key=SecretStr(API_KEY),
        anthropic_base_url=model_api.url,
    ) as running:
        yield running


async def test_auto_picks_the_configured_model_api_and_accounts_real_usage(
    llm_stack: Stack, model_api: FakeLLMServer
) -> None:
    # The model answers with no criteria at all: every attempt fails and escalates.
    answer = json.dumps({"status": "success", "criteria": {}, "summary": "done"})
    model_api.script(Scripted(body=anthropic_message(answer, usage=(1000, 200))))
    request = run_request(package_name="demo")
    events = await run_to_end(llm_stack.executor_stub(), request)
    run = events[-1].run_finished.run

    assert run.runner == common_pb2.RUNNER_ANTHROPIC
    assert run.seed == 0
    assert run.status == executor_pb2.RUN_STATUS_FAILED
    attempts = [attempt for agent in run.agents for attempt in agent.attempts]
    assert len(attempts) == len(model_api.requests)
    for attempt in attempts:
        input_price, output_price = PRICES[attempt.tier]
        assert attempt.cost_usd == pytest.approx((1000 * input_price + 200 * output_price) / 1e6)
        assert attempt.model == "claude-haiku-4-5-20251001"
        assert not attempt.success
    assert run.total_cost_usd == pytest.approx(sum(a.cost_usd for a in attempts))
    skipped = {a.role for a in run.agents if a.status == executor_pb2.AGENT_STATUS_SKIPPED}
    assert "publisher" in skipped
    assert {request.headers["x-api-key"] for request in model_api.requests} == {API_KEY}
    run_dir = Path(run.run_dir)
    assert "runner: `anthropic`" in (run_dir / "report.md").read_text().lower()
    for path in run_dir.iterdir():
        assert API_KEY.encode() not in path.read_bytes(), path.name


async def test_runs_share_one_http_client_and_its_connections(
    llm_stack: Stack, model_api: FakeLLMServer
) -> None:
    # The runner's HTTP client is built once per executor, not once per run:
    # the second run reuses a connection the first one opened.
    answer = json.dumps({"status": "success", "criteria": {}, "summary": "done"})
    model_api.script(Scripted(body=anthropic_message(answer)))
    stub = llm_stack.executor_stub()
    await run_to_end(stub, run_request(package_name="first"))
    first = {request.peer for request in model_api.requests}
    served = len(model_api.requests)
    await run_to_end(stub, run_request(package_name="second"))
    second = {request.peer for request in model_api.requests[served:]}
    assert first & second, (first, second)


async def test_shutdown_closes_the_shared_http_client(
    llm_stack: Stack, model_api: FakeLLMServer
) -> None:
    answer = json.dumps({"status": "success", "criteria": {}, "summary": "done"})
    model_api.script(Scripted(body=anthropic_message(answer)))
    await run_to_end(llm_stack.executor_stub(), run_request(package_name="demo"))
    peers = {request.peer for request in model_api.requests}
    assert llm_stack.executor is not None
    await llm_stack.executor.stop()
    llm_stack.executor = None

    async def closed() -> set[tuple[str, int]]:
        return model_api.closed()

    await eventually(closed, lambda ended: peers <= ended)
