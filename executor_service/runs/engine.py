"""Executing a team: dependency order, bounded concurrency, tier escalation.

Each agent waits for the agents it depends on. It starts only if they all
succeeded, else it is skipped naming the dependency. An agent tries the
tiers of its strategy in order until an attempt succeeds. Every attempt is
recorded, and cost and duration sum over all of them.

A resumed run starts from the results its journal kept (runs/journal.py):
an agent that had finished is kept as it was, one that had not goes on
from its next attempt; neither pays again for an attempt it recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from google.protobuf.message import Message

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service import metrics
from executor_service.convert.enums import STRATEGY_TO_PROTO, TIER_TO_PROTO
from executor_service.runners.base import AttemptOutcome, Runner
from executor_service.runs.composition import PlannedAgent
from memory_service.servicekit.tracing import set_attributes, span

# emit(event field name, event message): one progress event of the stream.
Emit = Callable[[str, Message], Awaitable[None]]
# Told of each attempt as soon as it is recorded (its cost is spent by then).
OnAttempt = Callable[[executor_pb2.Attempt], None]
# Checkpoints an agent's result as it stands: after each attempt, and final.
Checkpoint = Callable[[executor_pb2.AgentResult], Awaitable[None]]

_FINAL = (
    executor_pb2.AGENT_STATUS_SUCCEEDED,
    executor_pb2.AGENT_STATUS_FAILED,
    executor_pb2.AGENT_STATUS_SKIPPED,
)
_FINISHED = (executor_pb2.AGENT_STATUS_SUCCEEDED, executor_pb2.AGENT_STATUS_FAILED)
# What a journal may hold: finished agents, and running ones with attempts.
_RESUMABLE = (*_FINISHED, executor_pb2.AGENT_STATUS_RUNNING)


def strategy_to_proto(agent: PlannedAgent) -> common_pb2.TierStrategy.ValueType:
    """The strategy the agent follows: learned when it starts at a recommended
    tier, else its own (a learned run's roles without evidence keep theirs)."""
    if agent.learned:
        return common_pb2.TIER_STRATEGY_LEARNED
    return STRATEGY_TO_PROTO[agent.strategy]


class TeamExecution:
    """One execution of a team; `results` fills in as agents finish."""

    def __init__(
        self,
        team: list[PlannedAgent],
        runner: Runner,
        concurrency: int,
        emit: Emit,
        on_attempt: OnAttempt | None = None,
        checkpoint: Checkpoint | None = None,
        recorded: dict[str, executor_pb2.AgentResult] | None = None,
    ):
        self._team = team
        self._checkpoint = checkpoint
        self._on_attempt = on_attempt
        self._runner = runner
        self._slots = asyncio.Semaphore(concurrency)
        self._emit = emit
        self.results = {
            agent.role: executor_pb2.AgentResult(
                role=agent.role,
                status=executor_pb2.AGENT_STATUS_PENDING,
                tier_strategy=strategy_to_proto(agent),
                depends_on=agent.depends_on,
            )
            for agent in team
        }
        for role, result in (recorded or {}).items():
            if role in self.results and result.status in _RESUMABLE:
                self.results[role].CopyFrom(result)
        self._done = {agent.role: asyncio.Event() for agent in team}

    async def run(self) -> list[executor_pb2.AgentResult]:
        """Runs every agent; on cancellation marks the unfinished ones cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                for agent in self._team:
                    group.create_task(self._run_agent(agent))
        except BaseException:
            for result in self.results.values():
                if result.status not in _FINAL:
                    result.status = executor_pb2.AGENT_STATUS_CANCELLED
                    result.skip_reason = "the run was cancelled"
            raise
        return [self.results[agent.role] for agent in self._team]

    async def _run_agent(self, agent: PlannedAgent) -> None:
        try:
            for dependency in agent.depends_on:
                await self._done[dependency].wait()
            failed = [
                dep
                for dep in agent.depends_on
                if self.results[dep].status != executor_pb2.AGENT_STATUS_SUCCEEDED
            ]
            result = self.results[agent.role]
            if result.status in _FINISHED:  # Finished before a restart: kept, not rerun.
                return
            if failed:
                result.status = executor_pb2.AGENT_STATUS_SKIPPED
                result.skip_reason = f"dependency {', '.join(failed)} did not succeed"
                await self._emit(
                    "agent_skipped",
                    executor_pb2.AgentSkipped(role=agent.role, reason=result.skip_reason),
                )
                return
            async with self._slots:
                await self._attempt_until_success(agent, result)
            await self._emit("agent_finished", executor_pb2.AgentFinished(agent=result))
        finally:
            self._done[agent.role].set()

    async def _attempt_until_success(
        self, agent: PlannedAgent, result: executor_pb2.AgentResult
    ) -> None:
        result.status = executor_pb2.AGENT_STATUS_RUNNING
        await self._emit("agent_started", executor_pb2.AgentStarted(role=agent.role))
        done = len(result.attempts)  # Attempts recorded before a restart are kept.
        for number, tier in enumerate(agent.tiers[done:], start=done + 1):
            await self._emit(
                "attempt_started",
                executor_pb2.AttemptStarted(
                    role=agent.role, number=number, tier=TIER_TO_PROTO[tier]
                ),
            )
            started = time.perf_counter()
            with span("attune.attempt", role=agent.role, tier=tier.value, number=number) as current:
                try:
                    outcome = await self._runner.attempt(agent, tier, number)
                except Exception as error:  # A failed call is a failed attempt, not a failed run.
                    outcome = AttemptOutcome(
                        "", 0, 0, 0.0, {}, "", error=f"{type(error).__name__}: {error}"
                    )
                    set_attributes(current, error_type=type(error).__name__)
                set_attributes(current, outcome=_outcome_name(outcome), model=outcome.model or None)
            attempt = executor_pb2.Attempt(
                number=number,
                tier=TIER_TO_PROTO[tier],
                model=outcome.model,
                input_tokens=outcome.input_tokens,
                output_tokens=outcome.output_tokens,
                cost_usd=outcome.cost_usd,
                success=outcome.success,
                error=outcome.error or _unmet(outcome),
                criteria=outcome.criteria,
            )
            attempt.duration.FromNanoseconds(int((time.perf_counter() - started) * 1e9))
            result.attempts.append(attempt)
            metrics.attempt_made(tier, attempt.success)
            if self._on_attempt is not None:
                self._on_attempt(attempt)
            result.final_tier = attempt.tier
            result.cost_usd += attempt.cost_usd
            result.duration.FromNanoseconds(
                result.duration.ToNanoseconds() + attempt.duration.ToNanoseconds()
            )
            result.output = outcome.output
            if attempt.success:
                result.status = executor_pb2.AGENT_STATUS_SUCCEEDED
            elif number == len(agent.tiers):
                result.status = executor_pb2.AGENT_STATUS_FAILED
            if self._checkpoint is not None:  # The attempt is paid for: recorded now.
                await self._checkpoint(_copy(result))
            await self._emit(
                "attempt_finished", executor_pb2.AttemptFinished(role=agent.role, attempt=attempt)
            )
            if attempt.success:
                return
        result.status = executor_pb2.AGENT_STATUS_FAILED


def _copy(result: executor_pb2.AgentResult) -> executor_pb2.AgentResult:
    # The checkpoint writes on a thread; the engine goes on changing `result`.
    copy = executor_pb2.AgentResult()
    copy.CopyFrom(result)
    return copy


def _outcome_name(outcome: AttemptOutcome) -> str:
    """succeeded, failed (criteria unmet) or error (the call failed)."""
    if outcome.error:
        return "error"
    return "succeeded" if outcome.success else "failed"


def _unmet(outcome: AttemptOutcome) -> str:
    unmet = [name for name, met in outcome.criteria.items() if not met]
    return f"unmet criteria: {', '.join(unmet)}" if unmet else ""
