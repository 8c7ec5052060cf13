"""The anthropic and openai runners over real HTTP against a scripted local server."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from pydantic import SecretStr

from executor_service.runners.anthropic import AnthropicRunner
from executor_service.runners.base import AttemptOutcome
from executor_service.runners.factory import Provider, llm_config
from executor_service.runners.llm import LLMRunner
from executor_service.runners.openai_compatible import OpenAICompatibleRunner
from executor_service.runners.prices import load_price_table
from executor_service.runs.composition import PlannedAgent
from executor_service.settings import ExecutorSettings
from executor_service.templates.models import Tier, TierStrategy
from memory_service.servicekit.http_retry import RetryPolicy
from tests.support.fake_llm_server import (
    FakeLLMServer,
    Scripted,
    anthropic_message,
    openai_completion,
)

API_KEY = "sk-test-0123456789-very-secret"
AGENT = PlannedAgent(
    role="test_runner",
    strategy=TierStrategy.PROGRESSIVE,
    depends_on=(),
    stage=0,
    config={"package": "demo"},
    success_criteria=("tests pass", "coverage >= 80%"),
)
MET = {"tests pass": True, "coverage >= 80%": True}


@dataclass(frozen=True)
class Wire:
    """One API's wire format, as the tests need it."""

    provider: Provider
    runner: type[LLMRunner]
    answer: Callable[..., dict[str, Any]]
    path: str
    max_tokens_field: str


ANTHROPIC = Wire("anthropic", AnthropicRunner, anthropic_message, "/v1/messages", "max_tokens")
OPENAI = Wire(
    "openai",
    OpenAICompatibleRunner,
    openai_completion,
    "/chat/completions",
    "max_completion_tokens",
)


@pytest.fixture(params=[ANTHROPIC, OPENAI], ids=lambda wire: wire.provider)
def wire(request: pytest.FixtureRequest) -> Wire:
    result: Wire = request.param
    return result


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings read EXECUTOR_*: the tests use the default settings.
    for name in list(os.environ):
        if name.startswith("EXECUTOR_"):
            monkeypatch.delenv(name)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


@dataclass
class Runners:
    """Builds runners against the fake server; closes them after the test."""

    server: FakeLLMServer
    built: list[LLMRunner]

    def make(
        self, wire: Wire, *, max_retries: int = 2, timeout: float = 5.0, base: str = ""
    ) -> LLMRunner:
        base = base or self.server.url
        settings = ExecutorSettings(
            anthropic_api_key=SecretStr(API_KEY),
            anthropic_base_url=base,
            openai_api_key=SecretStr(API_KEY),
            openai_base_url=base,
            llm_timeout_seconds=timeout,
            llm_max_retries=max_retries,
        )
        # The settings' retry count, with backoff shrunk so tests stay fast.
        fast = RetryPolicy(max_retries, backoff_seconds=0.01, backoff_max_seconds=0.05)
        runner = wire.runner(replace(llm_config(wire.provider, settings), retry=fast))
        self.built.append(runner)
        return runner


@pytest.fixture
async def runners(server: FakeLLMServer) -> AsyncIterator[Runners]:
    made = Runners(server, [])
    yield made
    for runner in made.built:
        await runner.aclose()


def result_text(criteria: dict[str, bool], status: str = "success") -> str:
    return json.dumps({"status": status, "criteria": criteria, "summary": "ran the suite"})


def ok(wire: Wire, text: str | None = None) -> Scripted:
    return Scripted(body=wire.answer(text if text is not None else result_text(MET)))


def assert_failed_without_cost(outcome: AttemptOutcome) -> None:
    assert not outcome.success
    assert (outcome.input_tokens, outcome.output_tokens, outcome.cost_usd) == (0, 0, 0.0)


async def test_success_speaks_the_wire_format(
    wire: Wire, server: FakeLLMServer, runners: Runners
) -> None:
    server.script(ok(wire))
    runner = runners.make(wire)

    outcome = await runner.attempt(AGENT, Tier.CHEAP, 1)

    assert outcome.success, outcome.error
    assert outcome.criteria == MET
    assert outcome.output == "ran the suite"
    assert outcome.model == wire.answer("")["model"]  # The model that answered.
    assert (outcome.input_tokens, outcome.output_tokens) == (1000, 200)
    configured = ExecutorSettings().model_dump()[f"{wire.provider}_models"]["cheap"]
    assert outcome.cost_usd == pytest.approx(load_price_table().cost(configured, 1000, 200))
    [request] = server.requests
    assert request.path == wire.path
    assert request.body["model"] == configured
    assert request.body[wire.max_tokens_field] > 0
    prompt = json.dumps(request.body)
    assert "test_runner" in prompt
    assert "coverage >= 80%" in prompt
    assert request.body["messages"][-1]["role"] == "user"
    if wire is ANTHROPIC:
        assert request.headers["x-api-key"] == API_KEY
        assert request.headers["anthropic-version"] == "2023-06-01"
        assert request.body["system"]
    else:
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.body["messages"][0]["role"] == "system"


async def test_tier_picks_the_configured_model(
    wire: Wire, server: FakeLLMServer, runners: Runners
) -> None:
    server.script(ok(wire))
    runner = runners.make(wire)

    await runner.attempt(AGENT, Tier.PREMIUM, 1)

    premium = ExecutorSettings().model_dump()[f"{wire.provider}_models"]["premium"]
    assert server.requests[0].body["model"] == premium


async def test_retry_after_is_honoured(server: FakeLLMServer, runners: Runners) -> None:
    server.script(
        Scripted(
            status=429, body={"error": {"message": "slow down"}}, headers={"retry-after": "1"}
        ),
        ok(ANTHROPIC),
    )
    runner = runners.make(ANTHROPIC)  # Backoff alone would wait at most 0.05 s.

    outcome = await runner.attempt(AGENT, Tier.CHEAP, 1)

    assert outcome.success, outcome.error
    first, second = server.requests
    assert second.at - first.at >= 0.95


async def test_429_with_zero_retry_after_retries_at_once(
    wire: Wire, server: FakeLLMServer, runners: Runners
) -> None:
    server.script(Scripted(status=429, body={}, headers={"retry-after": "0"}), ok(wire))

    outcome = await runners.make(wire).attempt(AGENT, Tier.CHEAP, 1)

    assert outcome.success, outcome.error
    assert len(server.requests) == 2


async def test_retry_after_beyond_the_limit_fails_at_once(
    server: FakeLLMServer, runners: Runners
) -> None:
    server.script(Scripted(status=429, body={}, headers={"retry-after": "3600"}), ok(ANTHROPIC))

    outcome = await runners.make(ANTHROPIC).attempt(AGENT, Tier.CHEAP, 1)

    assert_failed_without_cost(outcome)
    assert "3600" in outcome.error
    assert len(server.requests) == 1


async def test_500_then_success(wire: Wire, server: FakeLLMServer, runners: Runners) -> None:
    server.script(Scripted(status=500, body={"error": {"message": "boom"}}), ok(wire))

    outcome = await runners.make(wire).attempt(AGENT, Tier.CHEAP, 1)

    assert outcome.success, outcome.error
    assert len(server.requests) == 2


async def test_500_always_gives_up_after_max_retries(
    wire: Wire, server: FakeLLMServer, runners: Runners
) -> None:
    server.script(Scripted(status=503, body={"error": {"message": "overloaded"}}))

    outcome = await runners.make(wire, max_retries=2).attempt(AGENT, Tier.CHEAP, 1)

    assert_failed_without_cost(outcome)
    assert len(server.requests) == 3
    assert "503" in outcome.error
    assert "overloaded" in outcome.error
    assert "3 tries" in outcome.error


async def test_other_4xx_is_not_retried(
    wire: Wire, server: FakeLLMServer, runners: Runners
) -> None:
    server.script(Scripted(status=400, body={"error": {"message": "bad model"}}), ok(wire))

    outcome = await runners.make(wire).attempt(AGENT, Tier.CHEAP, 1)

    assert_failed_without_cost(outcome)
    assert len(server.requests) == 1
    assert "400: bad model" in outcome.error


async def test_timeout_fails_the_attempt(server: FakeLLMServer, runners: Runners) -> None:
    server.script(Scripted(hang=True))

    outcome = await runners.make(OPENAI, max_retries=1, timeout=0.2).attempt(AGENT, Tier.CHEAP, 1)

    assert_failed_without_cost(outcome)
    assert "timed out after 0.2 s" in outcome.error
    # Timeouts are retried too. Counted by the client: on a loaded machine the
    # server thread may not have read the second request before it timed out.
    assert "gave up after 2 tries" in outcome.error
    assert 1 <= len(server.requests) <= 2


async def test_refused_connection_fails_the_attempt(runners: Runners) -> None:
    with FakeLLMServer() as gone:
        closed = gone.url  # Nothing listens here once the block ends.
    runner = runners.make(ANTHROPIC, max_retries=1, base=closed)

    outcome = await runner.attempt(AGENT, Tier.CHEAP, 1)

    assert_failed_without_cost(outcome)
    assert "connection failed" in outcome.error
    assert "2 tries" in outcome.error


async def test_non_json_body_fails_the_attempt(
    wire: Wire, server: FakeLLMServer, runners: Runners
) -> None:
    server.script(Scripted(body=b"<html>gateway</html>"))

    outcome = await runners.make(wire).attempt(AGENT, Tier.CHEAP, 1)

    assert_failed_without_cost(outcome)
    assert "not JSON" in outcome.error


async def test_answer_of_the_wrong_shape_fails_the_attempt(
    wire: Wire, server: FakeLLMServer, runners: Runners
) -> None:
    server.script(Scripted(body={"unexpected": True}))

    outcome = await runners.make(wire).attempt(AGENT, Tier.CHEAP, 1)

    assert_failed_without_cost(outcome)
    assert "malformed" in outcome.error


async def test_prose_output_fails_but_is_still_paid_for(
    wire: Wire, server: FakeLLMServer, runners: Runners
) -> None:
    server.script(ok(wire, "I ran the tests and they all pass!"))

    outcome = await runners.make(wire).attempt(AGENT, Tier.CHEAP, 1)

    assert not outcome.success
    assert "unusable result: the output holds no JSON object" in outcome.error
    assert outcome.output == "I ran the tests and they all pass!"
    assert outcome.cost_usd > 0  # The tokens were spent all the same.


async def test_fenced_result_with_prose_succeeds(
    wire: Wire, server: FakeLLMServer, runners: Runners
) -> None:
    server.script(ok(wire, f"Here is my result:\n```json\n{result_text(MET)}\n```\nDone."))

    outcome = await runners.make(wire).attempt(AGENT, Tier.CHEAP, 1)

    assert outcome.success, outcome.error


async def test_missing_usage_fails_the_attempt(
    wire: Wire, server: FakeLLMServer, runners: Runners
) -> None:
    server.script(Scripted(body=wire.answer(result_text(MET), usage=None)))

    outcome = await runners.make(wire).attempt(AGENT, Tier.CHEAP, 1)

    assert_failed_without_cost(outcome)
    assert "no token usage" in outcome.error


async def test_unmet_criterion_fails_with_the_criteria_map(
    wire: Wire, server: FakeLLMServer, runners: Runners
) -> None:
    criteria = {"tests pass": True, "coverage >= 80%": False}
    server.script(ok(wire, result_text(criteria, status="failure")))

    outcome = await runners.make(wire).attempt(AGENT, Tier.CHEAP, 1)

    assert not outcome.success
    assert outcome.criteria == criteria
    assert "unmet criteria: coverage >= 80%" in outcome.error
    assert outcome.cost_usd > 0


async def test_missing_criterion_fails(wire: Wire, server: FakeLLMServer, runners: Runners) -> None:
    server.script(ok(wire, result_text({"tests pass": True})))

    outcome = await runners.make(wire).attempt(AGENT, Tier.CHEAP, 1)

    assert not outcome.success
    assert outcome.criteria == {"tests pass": True, "coverage >= 80%": False}
    assert "criteria not reported: coverage >= 80%" in outcome.error


async def test_reported_failure_fails_even_with_criteria_met(
    wire: Wire, server: FakeLLMServer, runners: Runners
) -> None:
    server.script(ok(wire, result_text(MET, status="failure")))

    outcome = await runners.make(wire).attempt(AGENT, Tier.CHEAP, 1)

    assert not outcome.success
    assert "reported failure" in outcome.error


async def test_api_key_never_leaks(
    wire: Wire, server: FakeLLMServer, runners: Runners, caplog: pytest.LogCaptureFixture
) -> None:
    echo = {"error": {"message": f"invalid x-api-key {API_KEY}"}}
    server.script(Scripted(status=500, body=echo), Scripted(status=401, body=echo))
    caplog.set_level(logging.DEBUG)  # Every logger, httpx's included.

    outcome = await runners.make(wire).attempt(AGENT, Tier.CHEAP, 1)

    assert len(server.requests) == 2
    assert API_KEY in json.dumps(server.requests[0].headers)  # It was sent...
    assert not outcome.success
    assert "401: invalid x-api-key [redacted]" in outcome.error
    assert API_KEY not in repr(outcome)  # ...but is in no outcome field...
    assert any(record.getMessage() == "model call retrying" for record in caplog.records)
    for record in caplog.records:  # ...nor any log record, extras included.
        assert API_KEY not in record.getMessage()
        assert API_KEY not in repr(record.__dict__)
