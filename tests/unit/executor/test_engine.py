"""TeamExecution with the simulated runner forced to outcomes by its profile."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest
from google.protobuf.message import Message

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.convert.enums import TIER_TO_PROTO
from executor_service.runners.base import AttemptOutcome, Runner
from executor_service.runners.simulated import (
    DEFAULT_PROFILE,
    SimulatedRunner,
    SimulationProfile,
    attempt_cost,
)
from executor_service.runs.composition import PlannedAgent
from executor_service.runs.engine import TeamExecution
from executor_service.templates.models import TIER_LADDERS, Tier, TierStrategy

CHEAP, CAPABLE, PREMIUM = common_pb2.TIER_CHEAP, common_pb2.TIER_CAPABLE, common_pb2.TIER_PREMIUM
SUCCEEDED = executor_pb2.AGENT_STATUS_SUCCEEDED
FAILED = executor_pb2.AGENT_STATUS_FAILED
SKIPPED = executor_pb2.AGENT_STATUS_SKIPPED
CANCELLED = executor_pb2.AGENT_STATUS_CANCELLED


def agent(
    role: str,
    strategy: TierStrategy = TierStrategy.PROGRESSIVE,
    depends_on: Iterable[str] = (),
    criteria: tuple[str, ...] = ("tests pass", "docs build"),
) -> PlannedAgent:
    return PlannedAgent(
        role=role,
        strategy=strategy,
        depends_on=tuple(depends_on),
        stage=0,
        success_criteria=criteria,
    )


def runner(cheap: float, capable: float, premium: float, seed: int = 7) -> SimulatedRunner:
    profile = SimulationProfile(
        success_probability={Tier.CHEAP: cheap, Tier.CAPABLE: capable, Tier.PREMIUM: premium}
    )
    return SimulatedRunner(seed, profile)


class Recorder:
    """The emit callback: keeps every event in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Message]] = []

    async def __call__(self, name: str, message: Message) -> None:
        self.events.append((name, message))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def index(self, name: str, role: str, number: int = 0) -> int:
        """Position of the first event of that kind for the role (and attempt number)."""
        for position, (kind, message) in enumerate(self.events):
            if kind != name:
                continue
            if _role_of(kind, message) != role:
                continue
            if number and _number_of(kind, message) != number:
                continue
            return position
        raise AssertionError(f"no {name} for {role} #{number}: {self.names()}")

    def of_role(self, role: str) -> list[str]:
        return [kind for kind, message in self.events if _role_of(kind, message) == role]


def _role_of(kind: str, message: Message) -> str:
    if isinstance(message, executor_pb2.AgentFinished):
        return message.agent.role
    assert isinstance(
        message,
        executor_pb2.AgentStarted
        | executor_pb2.AttemptStarted
        | executor_pb2.AttemptFinished
        | executor_pb2.AgentSkipped,
    ), kind
    return message.role


def _number_of(kind: str, message: Message) -> int:
    if isinstance(message, executor_pb2.AttemptStarted):
        return message.number
    if isinstance(message, executor_pb2.AttemptFinished):
        return message.attempt.number
    raise AssertionError(kind)


async def execute(
    team: list[PlannedAgent], run_with: Runner, concurrency: int = 4
) -> tuple[dict[str, executor_pb2.AgentResult], Recorder]:
    recorder = Recorder()
    execution = TeamExecution(team, run_with, concurrency, recorder)
    async with asyncio.timeout(10):
        results = await execution.run()
    assert [result.role for result in results] == [member.role for member in team]
    return {result.role: result for result in results}, recorder


def tiers_tried(result: executor_pb2.AgentResult) -> list[int]:
    return [attempt.tier for attempt in result.attempts]


# --- tier escalation ---------------------------------------------------------------------


async def test_progressive_escalates_cheap_capable_premium() -> None:
    results, _ = await execute([agent("a")], runner(0.0, 0.0, 1.0))
    result = results["a"]
    assert result.status == SUCCEEDED
    assert tiers_tried(result) == [CHEAP, CAPABLE, PREMIUM]
    assert [attempt.number for attempt in result.attempts] == [1, 2, 3]
    assert [attempt.success for attempt in result.attempts] == [False, False, True]
    assert result.final_tier == PREMIUM
    assert [attempt.model for attempt in result.attempts] == [
        "simulated-cheap",
        "simulated-capable",
        "simulated-premium",
    ]


async def test_progressive_stops_at_the_first_success() -> None:
    results, _ = await execute([agent("a")], runner(0.0, 1.0, 1.0))
    assert tiers_tried(results["a"]) == [CHEAP, CAPABLE]
    assert results["a"].final_tier == CAPABLE
    assert results["a"].status == SUCCEEDED


async def test_capable_first_never_tries_cheap() -> None:
    results, _ = await execute([agent("a", TierStrategy.CAPABLE_FIRST)], runner(1.0, 0.0, 1.0))
    assert tiers_tried(results["a"]) == [CAPABLE, PREMIUM]
    assert results["a"].status == SUCCEEDED
    assert results["a"].final_tier == PREMIUM


async def test_cheap_only_fails_after_its_one_attempt() -> None:
    results, _ = await execute([agent("a", TierStrategy.CHEAP_ONLY)], runner(0.0, 1.0, 1.0))
    result = results["a"]
    assert result.status == FAILED
    assert tiers_tried(result) == [CHEAP]
    assert result.final_tier == CHEAP
    assert result.attempts[0].error.startswith("unmet criteria: ")
    assert result.attempts[0].error.removeprefix("unmet criteria: ") in ("tests pass", "docs build")
    assert "[simulated] a at tier cheap: did not meet" in result.output


async def test_premium_only_goes_straight_to_premium() -> None:
    results, _ = await execute([agent("a", TierStrategy.PREMIUM_ONLY)], runner(1.0, 1.0, 1.0))
    assert tiers_tried(results["a"]) == [PREMIUM]
    assert results["a"].status == SUCCEEDED
    assert results["a"].output == "[simulated] a at tier premium: met every criterion"


@pytest.mark.parametrize("strategy", list(TierStrategy))
async def test_when_every_tier_fails_every_tier_is_tried_once(strategy: TierStrategy) -> None:
    results, _ = await execute([agent("a", strategy)], runner(0.0, 0.0, 0.0))
    result = results["a"]
    assert result.status == FAILED
    assert tiers_tried(result) == [TIER_TO_PROTO[tier] for tier in TIER_LADDERS[strategy]]
    assert not any(attempt.success for attempt in result.attempts)
    assert result.final_tier == TIER_TO_PROTO[TIER_LADDERS[strategy][-1]]


async def test_cost_and_duration_sum_over_attempts() -> None:
    results, _ = await execute([agent("a")], runner(0.0, 0.0, 1.0))
    result = results["a"]
    assert len(result.attempts) == 3
    for attempt, tier in zip(result.attempts, TIER_LADDERS[TierStrategy.PROGRESSIVE], strict=True):
        assert attempt.input_tokens > 0
        assert attempt.output_tokens > 0
        assert attempt.cost_usd == pytest.approx(
            attempt_cost(tier, attempt.input_tokens, attempt.output_tokens)
        )
    assert result.cost_usd == pytest.approx(sum(attempt.cost_usd for attempt in result.attempts))
    assert result.cost_usd > max(attempt.cost_usd for attempt in result.attempts)
    assert result.duration.ToNanoseconds() == sum(
        attempt.duration.ToNanoseconds() for attempt in result.attempts
    )


class ExplodingRunner:
    """Raises on the cheap tier, succeeds above it."""

    name = "exploding"

    async def attempt(self, agent: PlannedAgent, tier: Tier, number: int) -> AttemptOutcome:
        if tier is Tier.CHEAP:
            raise RuntimeError("provider down")
        return AttemptOutcome("m", 1, 1, 0.5, {"ok": True}, "fine")


async def test_a_raising_attempt_is_a_failed_attempt_not_a_failed_run() -> None:
    results, _ = await execute([agent("a")], ExplodingRunner())
    result = results["a"]
    assert tiers_tried(result) == [CHEAP, CAPABLE]
    assert result.attempts[0].error == "RuntimeError: provider down"
    assert not result.attempts[0].success
    assert result.status == SUCCEEDED
    assert result.cost_usd == pytest.approx(0.5)


# --- dependencies and skips ----------------------------------------------------------------


async def test_agent_whose_dependency_failed_is_skipped_naming_it() -> None:
    team = [
        agent("builder", TierStrategy.CHEAP_ONLY),
        agent("publisher", TierStrategy.PREMIUM_ONLY, depends_on=["builder"]),
        agent("announcer", TierStrategy.PREMIUM_ONLY, depends_on=["publisher"]),
        agent("linter", TierStrategy.PREMIUM_ONLY),
    ]
    results, recorder = await execute(team, runner(0.0, 1.0, 1.0))
    assert results["builder"].status == FAILED
    assert results["publisher"].status == SKIPPED
    assert "builder" in results["publisher"].skip_reason
    assert results["publisher"].skip_reason == "dependency builder did not succeed"
    assert list(results["publisher"].attempts) == []
    # Skips cascade, each naming its own dependency.
    assert results["announcer"].status == SKIPPED
    assert "publisher" in results["announcer"].skip_reason
    # An independent agent is untouched.
    assert results["linter"].status == SUCCEEDED
    skipped = [message for kind, message in recorder.events if kind == "agent_skipped"]
    assert [(m.role, m.reason) for m in skipped if isinstance(m, executor_pb2.AgentSkipped)] == [
        ("publisher", "dependency builder did not succeed"),
        ("announcer", "dependency publisher did not succeed"),
    ]
    assert recorder.of_role("publisher") == ["agent_skipped"]


async def test_skip_reason_names_only_the_failed_dependencies() -> None:
    team = [
        agent("good", TierStrategy.PREMIUM_ONLY),
        agent("bad", TierStrategy.CHEAP_ONLY),
        agent("worse", TierStrategy.CHEAP_ONLY),
        agent("last", TierStrategy.PREMIUM_ONLY, depends_on=["good", "bad", "worse"]),
    ]
    results, _ = await execute(team, runner(0.0, 0.0, 1.0))
    assert results["last"].skip_reason == "dependency bad, worse did not succeed"


async def test_dependent_starts_only_after_its_dependency_finished() -> None:
    team = [
        agent("publisher", TierStrategy.PREMIUM_ONLY, depends_on=["builder"]),
        agent("builder", TierStrategy.PROGRESSIVE),
    ]
    results, recorder = await execute(team, runner(0.0, 1.0, 1.0))
    assert results["publisher"].status == SUCCEEDED
    assert recorder.index("agent_finished", "builder") < recorder.index(
        "agent_started", "publisher"
    )


# --- events ------------------------------------------------------------------------------


async def test_events_come_in_order_for_every_role() -> None:
    team = [
        agent("a", TierStrategy.PROGRESSIVE),
        agent("b", TierStrategy.CAPABLE_FIRST),
        agent("c", TierStrategy.CHEAP_ONLY, depends_on=["a"]),
    ]
    results, recorder = await execute(team, runner(0.0, 0.0, 1.0), concurrency=2)
    assert set(recorder.names()) == {
        "agent_started",
        "attempt_started",
        "attempt_finished",
        "agent_finished",
    }
    for role, result in results.items():
        attempts = len(result.attempts)
        expected = ["agent_started"]
        expected += ["attempt_started", "attempt_finished"] * attempts
        expected += ["agent_finished"]
        assert recorder.of_role(role) == expected, role
        assert recorder.index("agent_started", role) < recorder.index("attempt_started", role, 1)
        for number in range(1, attempts + 1):
            assert recorder.index("attempt_started", role, number) < recorder.index(
                "attempt_finished", role, number
            )
        assert recorder.index("attempt_finished", role, attempts) < recorder.index(
            "agent_finished", role
        )
    # The final agent_finished carries the complete result.
    finished = [m for k, m in recorder.events if k == "agent_finished"]
    by_role = {m.agent.role: m.agent for m in finished if isinstance(m, executor_pb2.AgentFinished)}
    assert by_role == results


async def test_attempt_events_carry_tier_and_outcome() -> None:
    _, recorder = await execute([agent("a")], runner(0.0, 1.0, 1.0))
    started = [m for k, m in recorder.events if isinstance(m, executor_pb2.AttemptStarted)]
    finished = [m for k, m in recorder.events if isinstance(m, executor_pb2.AttemptFinished)]
    assert [(m.number, m.tier) for m in started] == [(1, CHEAP), (2, CAPABLE)]
    assert [(m.attempt.number, m.attempt.success) for m in finished] == [(1, False), (2, True)]


# --- concurrency -------------------------------------------------------------------------


class GatedRunner:
    """Counts simultaneous attempts; each attempt waits until `width` are in flight.

    If the engine let more than `width` attempts run at once, the extra ones
    would enter before the barrier releases and the maximum would exceed it.
    """

    name = "gated"

    def __init__(self, width: int) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0
        self._barrier = asyncio.Barrier(width)

    async def attempt(self, agent: PlannedAgent, tier: Tier, number: int) -> AttemptOutcome:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self._barrier.wait()
        finally:
            self.in_flight -= 1
        return AttemptOutcome(f"gated-{tier.value}", 10, 10, 0.001, {"ok": True}, "ok")


@pytest.mark.parametrize(("concurrency", "agents"), [(2, 6), (3, 9), (4, 8)])
async def test_bounded_concurrency_is_honoured(concurrency: int, agents: int) -> None:
    gated = GatedRunner(concurrency)
    team = [agent(f"agent_{n}", TierStrategy.CHEAP_ONLY) for n in range(agents)]
    results, _ = await execute(team, gated, concurrency=concurrency)
    assert gated.calls == agents
    # The barrier only opens with `concurrency` attempts in flight, so the bound is reached...
    assert gated.max_in_flight == concurrency
    assert all(result.status == SUCCEEDED for result in results.values())


async def test_gated_runner_detects_an_unbounded_engine() -> None:
    # The measuring double itself: with a looser bound than its width it sees more.
    gated = GatedRunner(2)
    team = [agent(f"agent_{n}", TierStrategy.CHEAP_ONLY) for n in range(4)]
    await execute(team, gated, concurrency=4)
    assert gated.max_in_flight > 2


# --- cancellation ------------------------------------------------------------------------


class BlockingRunner:
    """Blocks attempts of one role until cancelled; others succeed at once."""

    name = "blocking"

    def __init__(self, blocked_role: str) -> None:
        self.blocked_role = blocked_role
        self.entered = asyncio.Event()
        self._never = asyncio.Event()

    async def attempt(self, agent: PlannedAgent, tier: Tier, number: int) -> AttemptOutcome:
        if agent.role == self.blocked_role:
            self.entered.set()
            await self._never.wait()
        return AttemptOutcome("m", 1, 1, 0.0, {"ok": True}, "ok")


async def test_cancellation_marks_unfinished_agents_cancelled() -> None:
    blocking = BlockingRunner("slow")
    quick_done = asyncio.Event()
    events: list[str] = []

    async def emit(name: str, message: Message) -> None:
        events.append(name)
        if isinstance(message, executor_pb2.AgentFinished) and message.agent.role == "quick":
            quick_done.set()

    team = [
        agent("slow", TierStrategy.CHEAP_ONLY),
        agent("after_slow", TierStrategy.CHEAP_ONLY, depends_on=["slow"]),
        agent("quick", TierStrategy.CHEAP_ONLY),
    ]
    execution = TeamExecution(team, blocking, 3, emit)
    task = asyncio.create_task(execution.run())
    async with asyncio.timeout(5):
        await blocking.entered.wait()
        await quick_done.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    results = execution.results
    assert results["slow"].status == CANCELLED
    assert results["slow"].skip_reason == "the run was cancelled"
    assert results["after_slow"].status == CANCELLED
    assert results["after_slow"].skip_reason == "the run was cancelled"
    assert results["quick"].status == SUCCEEDED
    assert results["quick"].skip_reason == ""
    assert "agent_skipped" not in events


async def test_results_start_pending() -> None:
    execution = TeamExecution(
        [agent("a"), agent("b", depends_on=["a"])], runner(1, 1, 1), 1, Recorder()
    )
    assert {r.status for r in execution.results.values()} == {executor_pb2.AGENT_STATUS_PENDING}
    assert list(execution.results["b"].depends_on) == ["a"]
    assert execution.results["a"].tier_strategy == common_pb2.TIER_STRATEGY_PROGRESSIVE


# --- the simulated runner ----------------------------------------------------------------

ROLES = [f"role_{n}" for n in range(40)]


async def outcomes(seed: int) -> list[AttemptOutcome]:
    simulated = SimulatedRunner(seed, DEFAULT_PROFILE)
    found = []
    for role in ROLES:
        for number, tier in enumerate(TIER_LADDERS[TierStrategy.PROGRESSIVE], start=1):
            found.append(await simulated.attempt(agent(role), tier, number))
    return found


async def test_same_seed_gives_identical_outcomes() -> None:
    first = await outcomes(1234)
    again = await outcomes(1234)
    assert first == again
    # The stream is not trivially constant.
    assert len({outcome.input_tokens for outcome in first}) > 1
    assert {outcome.success for outcome in first} == {True, False}


async def test_different_seeds_differ_somewhere() -> None:
    assert await outcomes(1) != await outcomes(2)


async def test_same_seed_gives_identical_team_results() -> None:
    team = [agent(role) for role in ROLES[:10]]

    async def once() -> list[tuple[int, list[tuple[int, int, int, bool]]]]:
        results, _ = await execute(team, SimulatedRunner(99, DEFAULT_PROFILE))
        return [
            (
                result.status,
                [(a.tier, a.input_tokens, a.output_tokens, a.success) for a in result.attempts],
            )
            for result in results.values()
        ]

    assert await once() == await once()


async def test_simulated_outcome_is_labelled_and_priced() -> None:
    simulated = SimulatedRunner(5, DEFAULT_PROFILE)
    outcome = await simulated.attempt(agent("a"), Tier.CAPABLE, 2)
    assert outcome.model == "simulated-capable"
    assert outcome.output.startswith("[simulated] a at tier capable")
    assert 1_200 <= outcome.input_tokens <= 4_000
    assert 200 <= outcome.output_tokens <= 1_200
    assert outcome.cost_usd == pytest.approx(
        attempt_cost(Tier.CAPABLE, outcome.input_tokens, outcome.output_tokens)
    )
    assert set(outcome.criteria) == {"tests pass", "docs build"}


@pytest.mark.parametrize(("probability", "success"), [(0.0, False), (1.0, True)])
async def test_profile_probabilities_force_the_outcome(probability: float, success: bool) -> None:
    simulated = runner(probability, probability, probability)
    for role in ROLES:
        outcome = await simulated.attempt(agent(role), Tier.CHEAP, 1)
        assert outcome.success is success
        assert list(outcome.criteria.values()).count(False) == (0 if success else 1)


async def test_a_simulated_failure_without_criteria_still_fails() -> None:
    bare = PlannedAgent(role="bare", strategy=TierStrategy.CHEAP_ONLY, depends_on=(), stage=0)
    outcome = await runner(0.0, 0.0, 0.0).attempt(bare, Tier.CHEAP, 1)
    assert not outcome.success
    assert outcome.error == "simulated failure"


async def test_each_attempt_is_told_as_it_is_recorded_with_its_cost() -> None:
    told: list[executor_pb2.Attempt] = []
    recorder = Recorder()
    team = [agent("builder"), agent("tester", depends_on=["builder"])]
    execution = TeamExecution(team, runner(0.0, 0.0, 1.0), 2, recorder, told.append)
    results = await execution.run()
    attempts = [attempt for result in results for attempt in result.attempts]
    assert told == attempts  # every attempt, once, in order
    assert sum(a.cost_usd for a in told) == pytest.approx(sum(r.cost_usd for r in results))
    assert all(a.cost_usd > 0 for a in told)
