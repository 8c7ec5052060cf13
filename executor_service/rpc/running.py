"""RunWorkflow and PlanWorkflow: a request checked, planned, admitted, run and finished."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.trace import Span

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service import metrics
from executor_service.convert.enums import (
    RUNNER_FROM_NAME,
    RUNNER_NAMES,
    STRATEGY_FROM_PROTO,
    TIER_TO_PROTO,
)
from executor_service.memory.client import caller_authorization
from executor_service.memory.delivery import Delivery
from executor_service.rpc.base import Context, RpcBase, acting_for, check_session_id
from executor_service.rpc.gate import gated, gated_stream
from executor_service.runners.base import Runner
from executor_service.runners.factory import RunnerConfigError, resolve_runner_name
from executor_service.runs.admission import Lease, caller_key, check_free_disk
from executor_service.runs.answer_secrets import secret_error_info, secret_violations
from executor_service.runs.as_pattern import run_to_pattern
from executor_service.runs.composition import PlannedAgent, compose_team
from executor_service.runs.engine import strategy_to_proto
from executor_service.runs.estimate import estimate_cost
from executor_service.runs.event_log import EventLog
from executor_service.runs.forms import from_form_value, resolve_answers, to_form_value
from executor_service.runs.journal import (
    CorruptJournalError,
    RunJournal,
    team_from_record,
    team_record,
)
from executor_service.runs.privacy import served_run
from executor_service.runs.store import new_run_id
from executor_service.runs.workflow_run import WorkflowRun
from executor_service.templates.models import Template, TierStrategy
from memory_service.access.audit import AuditAction
from memory_service.security.identity import Action, Principal
from memory_service.servicekit.errors import ServiceError, invalid_argument
from memory_service.servicekit.tracing import set_attributes, span

log = logging.getLogger("attune.executor")


def _started_run_id(event: executor_pb2.RunWorkflowResponse) -> str:
    return event.run_id


class RunningRpcs(RpcBase):
    """Plans and runs workflows."""

    async def _plan(
        self,
        template_id: str,
        answers: Any,
        strategy: common_pb2.TierStrategy.ValueType,
    ) -> tuple[Template, dict[str, Any], list[PlannedAgent]]:
        """The template, the answers resolved and the team; INVALID_ARGUMENT
        listing every bad answer. Spanned by template id only (not the answers),
        and only once the id names a template: before, it is any caller's text."""
        with span("attune.validate") as current:
            template, resolved, team = await self._validated(
                template_id, answers, strategy, current
            )
            set_attributes(current, agents=len(team))
            return template, resolved, team

    async def _validated(
        self,
        template_id: str,
        answers: Any,
        strategy: common_pb2.TierStrategy.ValueType,
        current: Span,
    ) -> tuple[Template, dict[str, Any], list[PlannedAgent]]:
        if strategy not in common_pb2.TierStrategy.values():
            raise invalid_argument([("tier_strategy", f"{strategy} is not a defined value")])
        template = self._template(template_id)
        set_attributes(current, template_id=template.id)
        resolved, violations = resolve_answers(template, answers)
        # Secrets are refused here, before anything is written (the run's
        # files would keep them), in the answers that are otherwise valid;
        # on a worker thread, as scanning up to 4 KiB per answer is CPU work.
        invalid = {field for field, _ in violations}
        holding_secrets = await asyncio.to_thread(
            secret_violations,
            answers,
            [question.id for question in template.questions if question.id not in invalid],
        )
        violations += holding_secrets
        if violations:
            shown = "; ".join(f"{field}: {text}" for field, text in violations[:3])
            error = invalid_argument(
                violations,
                f"{len(violations)} invalid answer(s) for template {template.id!r}: {shown[:500]}"
                + (" ..." if len(violations) > 3 else ""),
            )
            if holding_secrets:
                error.details += (secret_error_info(),)
            raise error
        # Learned has no override here: the template's strategies are its
        # starting point, see _learned_if_asked.
        override: TierStrategy | None = STRATEGY_FROM_PROTO.get(strategy)
        team = compose_team(template, resolved, override)
        if not team:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no agent rule of template {template.id!r} applies to these answers; "
                "there is nothing to run",
            )
        return template, resolved, team

    @gated(AuditAction.PLAN, Action.READ)
    async def PlanWorkflow(
        self, request: executor_pb2.PlanWorkflowRequest, context: Context, principal: Principal
    ) -> executor_pb2.PlanWorkflowResponse:
        # No run policy here (run_policy.py): a plan runs and spends nothing,
        # so any caller may see what any strategy would do.
        template, resolved, team = await self._plan(
            request.template_id, request.answers, request.tier_strategy
        )
        team = await self._learned_if_asked(
            request.tier_strategy, template.id, team, common_pb2.RUNNER_UNSPECIFIED
        )
        low, high = estimate_cost(team)
        return executor_pb2.PlanWorkflowResponse(
            resolved_answers={key: to_form_value(value) for key, value in resolved.items()},
            team=[_planned_to_proto(agent) for agent in team],
            estimated_cost=common_pb2.CostRange(min_usd=low, max_usd=high),
        )

    def _runner_name(self, request: executor_pb2.RunWorkflowRequest) -> str:
        """The runner the request asks for, else the default, resolved."""
        if request.runner not in common_pb2.Runner.values():
            raise invalid_argument([("runner", f"{request.runner} is not a defined value")])
        try:
            return resolve_runner_name(RUNNER_NAMES.get(request.runner), self._settings)
        except RunnerConfigError as error:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, str(error)) from None

    def _runner(self, name: str, request: executor_pb2.RunWorkflowRequest) -> tuple[Runner, int]:
        """The named runner, and the request's seed (else a fresh one)."""
        try:
            seed = request.seed if request.HasField("seed") else secrets.randbits(63)
            runner = self._runners.build(name, seed)
        except RunnerConfigError as error:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, str(error)) from None
        return runner, seed if name == "simulated" else 0

    @gated_stream(AuditAction.RUN, Action.WRITE, _started_run_id)
    async def RunWorkflow(
        self, request: executor_pb2.RunWorkflowRequest, context: Context, principal: Principal
    ) -> AsyncIterator[executor_pb2.RunWorkflowResponse]:
        check_session_id(request.session_id)
        if self.in_flight.stopping:
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE,
                "the executor is stopping and starts no new runs; try again (another "
                "replica, or this one once restarted)",
            )
        runner_name = self._runner_name(request)
        if request.tier_strategy not in common_pb2.TierStrategy.values():
            raise invalid_argument(
                [("tier_strategy", f"{request.tier_strategy} is not a defined value")]
            )
        # Policy, not the request, says which runners and strategies a caller
        # may use (see run_policy.py): refused before anything else is done.
        self._policy.check(
            principal,
            runner_name,
            request.runner != common_pb2.RUNNER_UNSPECIFIED,
            request.tier_strategy,
        )
        template, resolved, team = await self._plan(
            request.template_id, request.answers, request.tier_strategy
        )
        # Admitted once valid (a refused request costs nothing), before any
        # work; the run's task holds the slot from when it exists until done.
        caller = principal.user_id
        if principal is Principal.ANONYMOUS:  # Authentication off: tell callers apart anyway.
            caller = caller_key(caller_authorization(context.invocation_metadata()), context.peer())
        check_free_disk(self._runs.root, self._settings.min_free_disk_bytes)
        self._spend.check(caller)
        lease = self._admission.admit(caller)
        try:
            run = self._admitted_run(
                request, context, principal, caller, runner_name, template, team, resolved, lease
            )
            async with contextlib.aclosing(run) as events:
                async for event in events:
                    yield event
        finally:
            lease.release_unless_held()

    async def _admitted_run(
        self,
        request: executor_pb2.RunWorkflowRequest,
        context: Context,
        principal: Principal,
        caller: str,
        runner_name: str,
        template: Template,
        team: list[PlannedAgent],
        resolved: dict[str, Any],
        lease: Lease,
    ) -> AsyncGenerator[executor_pb2.RunWorkflowResponse, None]:
        # Before the runner exists: it may hold a connection to close.
        team = await self._learned_if_asked(
            request.tier_strategy, template.id, team, request.runner
        )
        runner, seed = self._runner(runner_name, request)
        if request.session_id:
            # The answers as the user gave them, not the resolved ones: a
            # default applied today is not a choice, and may change tomorrow.
            # Validation has passed, so every value carries an answer.
            given = {
                question_id: answer
                for question_id, value in request.answers.items()
                if (answer := from_form_value(value)) is not None
            }
            self._memory.remember_choices_later(
                request.session_id, template.id, given, on_behalf_of=acting_for(principal)
            )
        run = executor_pb2.Run(
            run_id=new_run_id(),
            template_id=template.id,
            template_version=template.version,
            status=executor_pb2.RUN_STATUS_RUNNING,
            runner=RUNNER_FROM_NAME[runner.name],
            seed=seed,
            answers={key: to_form_value(value) for key, value in resolved.items()},
            owner=principal.user_id,
        )
        run.create_time.GetCurrentTime()
        config = describe_config(run, team)
        # Journalled before the first agent starts: from now on a restart resumes it.
        journal = self._journals.open(run.run_id)
        record = {
            "run": json_format.MessageToDict(run, preserving_proto_field_name=True),
            "config": config,
            "team": team_record(team),
            "runner": runner.name,
            "caller": caller,
            "session_id": request.session_id,
            "tier_strategy": common_pb2.TierStrategy.Name(request.tier_strategy),
            # Replicas sharing the runs root each resume only their own runs.
            "replica": self._journals.replica,
        }
        await asyncio.to_thread(journal.start, record)
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        # Before the first event: WatchRun replays the run from its log.
        event_log = await asyncio.to_thread(EventLog, self._runs.root, run)
        workflow = self._workflow(
            run, team, runner, template, config, caller, journal, event_log, lease.hold_until
        )
        log.info("run started", extra={"run_id": run.run_id, "template_id": template.id})
        started_event = executor_pb2.RunStarted(
            team=[_planned_to_proto(agent) for agent in team], runner=run.runner, seed=seed
        )
        async for event in workflow.stream(started_event, deadline):
            yield event

    def _workflow(
        self,
        run: executor_pb2.Run,
        team: list[PlannedAgent],
        runner: Runner,
        template: Template,
        config: dict[str, Any],
        caller: str,
        journal: RunJournal,
        event_log: EventLog,
        on_task: Callable[[asyncio.Task[None]], None] | None = None,
        recorded: dict[str, executor_pb2.AgentResult] | None = None,
    ) -> WorkflowRun:
        """The run's execution, finished by persisting it and removing its journal."""
        # Measured from the run's creation, so a resumed run counts its first life.
        created = run.create_time.ToNanoseconds() / 1e9
        started = time.perf_counter() - max(0.0, time.time() - created)

        async def finish(
            finished: executor_pb2.Run, remaining: float | None
        ) -> list[tuple[str, Message]]:
            try:
                return await self._finish(finished, template, config, started, remaining, journal)
            finally:
                # Once on disk (run_dir set), the run is history: the learner
                # counts it now rather than reading it back.
                if finished.run_dir:
                    self._learner.record(await asyncio.to_thread(served_run, finished))

        return WorkflowRun(
            run,
            team,
            runner,
            self._settings.max_concurrent_agents,
            finish,
            on_task,
            # Spend accrues to the caller attempt by attempt, as it is spent.
            lambda attempt: self._spend.charge(caller, attempt.cost_usd),
            journal=journal,
            recorded=recorded,
            in_flight=self.in_flight,
            event_log=event_log,
            first_sequence=event_log.last_sequence(),
        )

    async def resume_unfinished(self) -> int:
        """Resumes, in the background, every run a journal says had not
        finished when this executor last stopped; returns how many."""
        resumed = 0
        for journal in await asyncio.to_thread(self._journals.unfinished):
            try:
                record = await asyncio.to_thread(journal.start_record)
                recorded = await asyncio.to_thread(journal.agents)
                run = json_format.ParseDict(record["run"], executor_pb2.Run())
                team = team_from_record(record["team"])
                template = self._template(run.template_id)
                runner = self._runners.build(str(record["runner"]), run.seed)
            except (
                CorruptJournalError,
                json_format.ParseError,
                KeyError,
                ValueError,
                TypeError,
                AttributeError,
                ServiceError,
                RunnerConfigError,
            ) as error:
                # Kept for an operator to look at; nothing is resumed half-understood.
                log.error("run not resumed", extra={"run_id": journal.run_id, "reason": str(error)})
                continue
            # The same log goes on: WatchRun sees the run's events before and after.
            event_log = await asyncio.to_thread(EventLog, self._runs.root, run)
            workflow = self._workflow(
                run,
                team,
                runner,
                template,
                record["config"],
                str(record["caller"]),
                journal,
                event_log,
                recorded=recorded,
            )
            workflow.resume()
            resumed += 1
            log.info(
                "run resumed",
                extra={
                    "run_id": run.run_id,
                    "owner": run.owner,
                    "agents_kept": sum(1 for result in recorded.values() if result.attempts),
                },
            )
        return resumed

    async def _finish(
        self,
        run: executor_pb2.Run,
        template: Template,
        run_config: dict[str, Any],
        started: float,
        remaining: float | None,
        journal: RunJournal,
    ) -> list[tuple[str, Message]]:
        """Totals, persists, queues and offers the pattern; returns the events."""
        run.total_cost_usd = sum(agent.cost_usd for agent in run.agents)
        run.total_duration.FromNanoseconds(int((time.perf_counter() - started) * 1e9))
        run.finish_time.GetCurrentTime()
        pattern = run_to_pattern(run, template)
        # The replay keeps off the pattern from before its marker is on disk
        # until its fresh offer is over: one offer, counted once.
        with self._deliverer.claimed(pattern.id):
            marker = self._deliverer.outbox.staged_file(pattern)
            # The run and its queued pattern become durable in one atomic step.
            with span("attune.persist", run_id=run.run_id, template_id=run.template_id):
                path = await asyncio.to_thread(self._runs.persist, run, run_config, marker)
            # The run directory is the record now; a crash before this line leaves a
            # journal that the next start finds persisted and removes (journal.py).
            await asyncio.to_thread(journal.remove)
            # Counted once on disk: a run is finished when its files say so.
            metrics.run_finished(
                run.template_id,
                metrics.RUN_STATUSES.get(run.status, "unknown"),
                RUNNER_NAMES.get(run.runner, "unknown"),
                run.total_cost_usd,
            )
            events: list[tuple[str, Message]] = [
                ("run_persisted", executor_pb2.RunPersisted(run_dir=str(path)))
            ]
            self._local_index.add(pattern)
            with span(
                "attune.store",
                run_id=run.run_id,
                template_id=run.template_id,
                namespace=self._memory.namespace,
                pattern_id=pattern.id,
            ) as current:
                delivery = await self._deliverer.deliver(pattern, remaining)
                set_attributes(current, outcome=_delivery_outcome(delivery))
        if delivery.stored:
            run.pattern_delivery = executor_pb2.PATTERN_DELIVERY_STORED
            events.append(
                (
                    "pattern_stored",
                    executor_pb2.PatternStored(pattern_id=pattern.id, deduped=delivery.deduped),
                )
            )
        elif delivery.rejected:
            run.pattern_delivery = executor_pb2.PATTERN_DELIVERY_REJECTED
            events.append(
                (
                    "pattern_rejected",
                    executor_pb2.PatternRejected(pattern_id=pattern.id, reason=delivery.reason),
                )
            )
        else:
            run.pattern_delivery = executor_pb2.PATTERN_DELIVERY_QUEUED
            events.append(
                (
                    "pattern_queued",
                    executor_pb2.PatternQueued(pattern_id=pattern.id, reason=delivery.reason),
                )
            )
        log.info(
            "run finished",
            extra={
                "run_id": run.run_id,
                "status": executor_pb2.RunStatus.Name(run.status),
                "pattern": executor_pb2.PatternDelivery.Name(run.pattern_delivery),
            },
        )
        return events


def _delivery_outcome(delivery: Delivery) -> str:
    if delivery.stored:
        return "deduped" if delivery.deduped else "stored"
    return "rejected" if delivery.rejected else "queued"


def describe_config(run: executor_pb2.Run, team: list[PlannedAgent]) -> dict[str, Any]:
    """config.json of a run: what was run, how, and by which runner."""
    return {
        "run_id": run.run_id,
        "template_id": run.template_id,
        "template_version": run.template_version,
        "runner": RUNNER_NAMES[run.runner],
        "seed": run.seed,
        "owner": run.owner,
        "created": datetime.now(UTC).isoformat(),
        "team": [
            {
                "role": agent.role,
                "tier_strategy": agent.strategy_name,
                "tiers": [tier.value for tier in agent.tiers],
                "depends_on": list(agent.depends_on),
                "stage": agent.stage,
                "config": agent.config,
            }
            for agent in team
        ],
    }


def _planned_to_proto(agent: PlannedAgent) -> executor_pb2.PlannedAgent:
    return executor_pb2.PlannedAgent(
        role=agent.role,
        tier_strategy=strategy_to_proto(agent),
        first_tier=TIER_TO_PROTO[agent.tiers[0]],
        depends_on=agent.depends_on,
        stage=agent.stage,
        config=agent.config,
    )
