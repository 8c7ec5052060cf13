"""The ExecutorService RPCs. RPCs not listed here answer UNIMPLEMENTED."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.message import Message

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from attune.memory.v1 import memory_pb2
from executor_service import __version__
from executor_service.answer_secrets import secret_error_info, secret_violations
from executor_service.breaker import BreakerOpenError
from executor_service.composition import PlannedAgent, compose_team
from executor_service.convert import (
    RUNNER_FROM_NAME,
    RUNNER_NAMES,
    STRATEGY_FROM_PROTO,
    TIER_TO_PROTO,
)
from executor_service.delivery import PatternDeliverer
from executor_service.engine import strategy_to_proto
from executor_service.estimate import estimate_cost
from executor_service.forms import from_form_value, resolve_answers, to_form_value
from executor_service.gate import gated, gated_stream
from executor_service.learning.protos import choice_to_proto, suggestion_to_proto
from executor_service.learning.requests import partial_answers
from executor_service.learning.service import Learner
from executor_service.local_index import LocalIndex
from executor_service.memory_client import (
    CREDENTIAL_CODES,
    MAX_SESSION_ID,
    UNREACHABLE_CODES,
    caller_authorization,
)
from executor_service.patterns import run_owner, run_to_pattern
from executor_service.run_admission import Lease, RunAdmission, caller_key, check_free_disk
from executor_service.run_policy import RunPolicy
from executor_service.run_privacy import served_run
from executor_service.run_query import RUN_SCHEMA, run_record
from executor_service.run_store import RUN_ID_PATTERN, CorruptRunError, RunStore, new_run_id
from executor_service.runners.base import Runner
from executor_service.runners.factory import RunnerConfigError, Runners, resolve_runner_name
from executor_service.settings import ExecutorSettings
from executor_service.spend_limit import SpendLimit
from executor_service.templates.catalog import Catalog
from executor_service.templates.models import Template, TierStrategy
from executor_service.templates.proto import template_to_proto
from executor_service.visibility import Viewer, is_sensitive_run
from executor_service.workflow_run import IN_PROGRESS, WorkflowRun
from memory_service.audit_buffer import BufferedAudit
from memory_service.denials import DenialLimiter
from memory_service.search.filter import FilterError, compile_filter, matches
from memory_service.search.planning import PlanError, SearchPlan, plan_search, size_violations
from memory_service.security.audit import AuditAction
from memory_service.security.identity import Action, Authenticator, Principal
from memory_service.servicekit.errors import ServiceError, invalid_argument, not_found, unavailable
from memory_service.servicekit.paging import (
    decode_cursor,
    decode_token,
    encode_cursor,
    encode_token,
    fit_page,
    page_bounds,
)

log = logging.getLogger("attune.executor")

Context = grpc.aio.ServicerContext[Any, Any]

# A page of runs stays well under the 8 MiB message limit, whatever its size.
MAX_PAGE_BYTES = 4 * 1024 * 1024


# What each call touched, for its audit record.


def _count_of(field: str) -> Callable[[Any, Any], tuple[Sequence[str], int]]:
    def summary(request: Any, response: Any) -> tuple[Sequence[str], int]:
        return (), len(getattr(response, field))

    return summary


def _started_run_id(event: executor_pb2.RunWorkflowResponse) -> str:
    return event.run_id


def _run_read(
    request: executor_pb2.GetRunRequest, response: executor_pb2.GetRunResponse
) -> tuple[Sequence[str], int]:
    return (response.run.run_id,), 1


def _runs_listed(
    request: executor_pb2.ListRunsRequest, response: executor_pb2.ListRunsResponse
) -> tuple[Sequence[str], int]:
    return [run.run_id for run in response.runs], len(response.runs)


def _hits_found(
    request: executor_pb2.SearchRunsRequest, response: executor_pb2.SearchRunsResponse
) -> tuple[Sequence[str], int]:
    return [hit.run_id for hit in response.hits], len(response.hits)


class ExecutorServicer(executor_pb2_grpc.ExecutorServiceServicer):
    """Runs workflows and answers for their runs."""

    def __init__(
        self,
        settings: ExecutorSettings,
        catalog: Catalog,
        runs: RunStore,
        deliverer: PatternDeliverer,
        local_index: LocalIndex,
        *,
        authenticator: Authenticator,
        audit_log: BufferedAudit,
        denials: DenialLimiter | None = None,
        runners: Runners | None = None,
    ) -> None:
        self.authenticator = authenticator  # Every RPC's caller is one (see gate.py).
        self.audit_log = audit_log  # Every RPC writes one record here (see gate.py).
        self.denials = denials
        self.namespace = settings.memory_namespace  # Where the executor's runs live.
        self._settings = settings
        self._runners = runners or Runners(settings)  # Built once; its owner closes it.
        self._catalog = catalog
        self._runs = runs
        self._deliverer = deliverer
        self._local_index = local_index
        self._memory = deliverer.client
        self._admission = RunAdmission(
            max_in_flight=settings.max_runs_in_flight,
            max_in_flight_per_caller=settings.max_runs_in_flight_per_caller,
            per_minute_per_caller=settings.runs_per_minute_per_caller,
            per_minute=settings.runs_per_minute,
        )
        self._policy = RunPolicy(
            settings.allowed_runners, settings.allowed_tier_strategies, settings.runner
        )
        self._spend = SpendLimit(settings.max_spend_per_hour_per_caller_usd)

    # --- templates -----------------------------------------------------------

    def _template(self, template_id: str) -> Template:
        if not template_id:
            raise invalid_argument([("template_id", "required")])
        if len(template_id) > 128:
            raise invalid_argument([("template_id", "longer than 128 characters")])
        template = self._catalog.get(template_id)
        if template is None:
            known = ", ".join(t.id for t in self._catalog.all())
            raise not_found(
                "template", template_id, f"unknown template {template_id!r}; known: {known}"
            )
        return template

    @gated(AuditAction.TEMPLATES, Action.READ, _count_of("templates"))
    async def ListTemplates(
        self, request: executor_pb2.ListTemplatesRequest, context: Context, principal: Principal
    ) -> executor_pb2.ListTemplatesResponse:
        size = page_bounds(request.page_size, 50, 200)
        offset = decode_token(request.page_token, "templates")
        templates = self._catalog.all()
        page = templates[offset : offset + size]
        more = offset + size < len(templates)
        return executor_pb2.ListTemplatesResponse(
            templates=[template_to_proto(t) for t in page],
            next_page_token=encode_token(offset + size, "templates") if more else "",
        )

    @gated(AuditAction.TEMPLATES, Action.READ)
    async def GetTemplate(
        self, request: executor_pb2.GetTemplateRequest, context: Context, principal: Principal
    ) -> executor_pb2.GetTemplateResponse:
        return executor_pb2.GetTemplateResponse(
            template=template_to_proto(self._template(request.template_id))
        )

    # --- planning and running --------------------------------------------------

    async def _plan(
        self,
        template_id: str,
        answers: Any,
        strategy: common_pb2.TierStrategy.ValueType,
    ) -> tuple[Template, dict[str, Any], list[PlannedAgent]]:
        if strategy not in common_pb2.TierStrategy.values():
            raise invalid_argument([("tier_strategy", f"{strategy} is not a defined value")])
        template = self._template(template_id)
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
        _check_session_id(request.session_id)
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
        started = time.perf_counter()
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

        async def finish(
            finished: executor_pb2.Run, remaining: float | None
        ) -> list[tuple[str, Message]]:
            try:
                return await self._finish(finished, template, config, started, remaining)
            finally:
                # Once on disk (run_dir set), the run is history: the learner
                # counts it now rather than reading it back.
                if finished.run_dir:
                    self._learner.record(await asyncio.to_thread(served_run, finished))

        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        workflow = WorkflowRun(
            run,
            team,
            runner,
            self._settings.max_concurrent_agents,
            finish,
            lease.hold_until,
            # Spend accrues to the caller attempt by attempt, as it is spent.
            lambda attempt: self._spend.charge(caller, attempt.cost_usd),
        )
        log.info("run started", extra={"run_id": run.run_id, "template_id": template.id})
        started_event = executor_pb2.RunStarted(
            team=[_planned_to_proto(agent) for agent in team], runner=run.runner, seed=seed
        )
        async for event in workflow.stream(started_event, deadline):
            yield event

    async def _finish(
        self,
        run: executor_pb2.Run,
        template: Template,
        run_config: dict[str, Any],
        started: float,
        remaining: float | None,
    ) -> list[tuple[str, Message]]:
        """Totals, persists, queues and offers the pattern; returns the events."""
        run.total_cost_usd = sum(agent.cost_usd for agent in run.agents)
        run.total_duration.FromNanoseconds(int((time.perf_counter() - started) * 1e9))
        run.finish_time.GetCurrentTime()
        pattern = run_to_pattern(run, template)
        marker = self._deliverer.outbox.staged_file(pattern)
        # The run and its queued pattern become durable in one atomic step.
        path = await asyncio.to_thread(self._runs.persist, run, run_config, marker)
        events: list[tuple[str, Message]] = [
            ("run_persisted", executor_pb2.RunPersisted(run_dir=str(path)))
        ]
        self._local_index.add(pattern)
        delivery = await self._deliverer.deliver(pattern, remaining)
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

    # --- reading runs ----------------------------------------------------------

    @gated(AuditAction.GET, Action.READ, _run_read)
    async def GetRun(
        self, request: executor_pb2.GetRunRequest, context: Context, principal: Principal
    ) -> executor_pb2.GetRunResponse:
        if not request.run_id:
            raise invalid_argument([("run_id", "required")])
        if not RUN_ID_PATTERN.fullmatch(request.run_id):
            raise invalid_argument(
                [("run_id", "not a run id (UTC date-time, then a ULID: 20260117-052959-01kf...)")]
            )
        # Another owner's SENSITIVE run answers exactly as an unknown id:
        # its existence is not the caller's to learn.
        viewer = Viewer.of(principal)
        if (in_progress := IN_PROGRESS.get(request.run_id)) is not None:
            snapshot = in_progress.snapshot()
            if not viewer.sees(run_owner(snapshot)) and await asyncio.to_thread(
                is_sensitive_run, snapshot, self._catalog.get(snapshot.template_id)
            ):
                raise not_found("run", request.run_id)
            served = await asyncio.to_thread(served_run, snapshot)
            return executor_pb2.GetRunResponse(run=served)
        if not self._local_index.visible(request.run_id, viewer):
            raise not_found("run", request.run_id)
        try:
            run = await asyncio.to_thread(self._runs.load, request.run_id)
        except CorruptRunError as error:
            raise ServiceError(grpc.StatusCode.DATA_LOSS, str(error)) from None
        if run is None:
            raise not_found("run", request.run_id)
        outbox = self._deliverer.outbox
        if outbox.is_queued(run.run_id):
            run.pattern_delivery = executor_pb2.PATTERN_DELIVERY_QUEUED
        elif await asyncio.to_thread(outbox.is_rejected, run.run_id):
            run.pattern_delivery = executor_pb2.PATTERN_DELIVERY_REJECTED
        else:
            run.pattern_delivery = executor_pb2.PATTERN_DELIVERY_STORED
        return executor_pb2.GetRunResponse(run=run)

    @gated(AuditAction.SEARCH, Action.READ, _hits_found)
    async def SearchRuns(
        self, request: executor_pb2.SearchRunsRequest, context: Context, principal: Principal
    ) -> executor_pb2.SearchRunsResponse:
        limit = page_bounds(request.page_size, 10, 100)
        # Sizes first: nothing reads the query or filter before they are bounded.
        if violations := size_violations(request.query, request.filter):
            raise invalid_argument(violations)
        # Memory is searched as the caller (the executor acting on their
        # behalf), never with the executor's own rights, so the caller's
        # visibility applies there: no confused deputy. The run files show a
        # SENSITIVE run only to its owner (nor do its words shape anyone
        # else's plan), as the memory service does.
        on_behalf_of = acting_for(principal)
        viewer = Viewer.of(principal)
        # Planned here too, with the same code as the memory service, so a bad
        # request fails the same way whether or not the memory service is up.
        try:
            plan = plan_search(
                request.query,
                request.filter,
                not request.disable_query_understanding,
                self._local_index.vocabulary(viewer=viewer),
                datetime.now(UTC),
            )
        except PlanError as error:
            raise invalid_argument(error.violations) from None
        if request.mode not in executor_pb2.SearchRunsMode.values():
            raise invalid_argument([("mode", f"{request.mode} is not a defined value")])
        mode = request.mode or executor_pb2.SEARCH_RUNS_MODE_AUTO
        if mode == executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES:
            return self._local_answer(plan, limit, "", viewer)
        try:
            response = await self._memory.search(
                memory_pb2.SearchPatternsRequest(
                    query=request.query,
                    filter=request.filter,
                    page_size=limit,
                    explain=request.explain,
                    disable_query_understanding=request.disable_query_understanding,
                ),
                context.time_remaining(),
                on_behalf_of=on_behalf_of,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in CREDENTIAL_CODES:
                # Surfaced, in every mode, never degraded to the local files:
                # a refusal is an answer, not an outage, and an answer from
                # files would bypass the memory service's access control.
                raise _refused(error, on_behalf_of) from None
            if error.code() not in UNREACHABLE_CODES:
                raise ServiceError(error.code(), f"memory service: {error.details()}") from None
            if mode == executor_pb2.SEARCH_RUNS_MODE_MEMORY:
                raise unavailable(f"memory service unreachable: {error.details()}") from None
            reason = (
                f"memory service unreachable ({error.code().name}); answered from local run files"
            )
            if isinstance(error, BreakerOpenError):
                # Nothing was sent: say why, so no one hunts for a timeout.
                reason = (
                    "memory service unreachable (circuit breaker open); "
                    "answered from local run files"
                )
            return self._local_answer(plan, limit, reason, viewer)
        hits = [_hit(result.pattern, result.score) for result in response.results]
        source = executor_pb2.SEARCH_SOURCE_MEMORY
        if mode == executor_pb2.SEARCH_RUNS_MODE_HYBRID:
            seen = {hit.run_id for hit in hits}
            local = self._local_index.search(plan.terms, plan.condition, limit, viewer=viewer)
            hits += [_hit(h.pattern, h.score) for h in local if h.pattern.id not in seen][
                : max(0, limit - len(hits))
            ]
            source = executor_pb2.SEARCH_SOURCE_HYBRID
        return executor_pb2.SearchRunsResponse(
            hits=_within_page(hits), source=source, applied_filter=response.applied_filter
        )

    def _local_answer(
        self, plan: SearchPlan, limit: int, degraded_reason: str, viewer: Viewer
    ) -> executor_pb2.SearchRunsResponse:
        found = self._local_index.search(plan.terms, plan.condition, limit, viewer=viewer)
        return executor_pb2.SearchRunsResponse(
            hits=_within_page([_hit(hit.pattern, hit.score) for hit in found]),
            source=executor_pb2.SEARCH_SOURCE_LOCAL_FILES,
            degraded=bool(degraded_reason),
            degraded_reason=degraded_reason,
            applied_filter=plan.applied_filter,
        )

    @gated(AuditAction.STATUS, Action.READ)
    async def GetStatus(
        self, request: executor_pb2.GetStatusRequest, context: Context, principal: Principal
    ) -> executor_pb2.GetStatusResponse:
        outbox = self._deliverer.outbox
        depth, oldest = outbox.depth(), outbox.oldest_age_seconds()
        status = executor_pb2.GetStatusResponse(
            memory_reachable=bool(self._memory.reachable),
            memory_address=self._memory.address,
            # The proto's names are the breaker's states, prefixed.
            breaker_state=executor_pb2.BreakerState.Value(
                f"BREAKER_STATE_{self._memory.breaker.state.value}"
            ),
            outbox_depth=depth,
            last_memory_error=self._memory.last_error,
            run_count=len(await asyncio.to_thread(self._runs.run_ids)),
            rejected_pattern_count=await asyncio.to_thread(outbox.rejected_count),
            version=__version__,
        )
        if oldest is not None:
            status.oldest_queued_age.FromNanoseconds(int(oldest * 1e9))
        return status

    @gated(AuditAction.LIST, Action.READ, _runs_listed)
    async def ListRuns(
        self, request: executor_pb2.ListRunsRequest, context: Context, principal: Principal
    ) -> executor_pb2.ListRunsResponse:
        try:
            condition = compile_filter(request.filter, RUN_SCHEMA)
        except FilterError as error:
            raise invalid_argument([("filter", str(error))]) from None
        size = page_bounds(request.page_size, 50, 500)
        scope = f"runs:{request.filter}"
        # Keyset paging on the run id: runs finishing meanwhile never shift a
        # page, and runs the caller may not see are skipped like non-matches.
        after = decode_cursor(request.page_token, scope)
        viewer = Viewer.of(principal)

        def page() -> tuple[list[executor_pb2.Run], bool]:
            # The filter is applied before paging, so no match is skipped.
            found: list[executor_pb2.Run] = []
            room = MAX_PAGE_BYTES
            for run_id in self._runs.run_ids():
                if after and run_id >= after:
                    continue
                if not self._local_index.visible(run_id, viewer) or _being_indexed(run_id, viewer):
                    continue
                run = self._runs.readable(run_id)
                if run is None or not matches(condition, run_record(run), RUN_SCHEMA):
                    continue
                room -= run.ByteSize()
                if len(found) == size or (found and room < 0):
                    return found, True
                found.append(run)
            return found, False

        runs, more = await asyncio.to_thread(page)
        token = encode_cursor(runs[-1].run_id, scope) if more else ""
        return executor_pb2.ListRunsResponse(runs=runs, next_page_token=token)

    # --- learning from history ------------------------------------------------

    @functools.cached_property
    def _learner(self) -> Learner:
        """The learner over this executor's runs, made on first use."""
        return Learner(self._settings, self._catalog, self._runs, self._memory, self._local_index)

    async def _learned_if_asked(
        self,
        strategy: common_pb2.TierStrategy.ValueType,
        template_id: str,
        team: list[PlannedAgent],
        runner: common_pb2.Runner.ValueType,
    ) -> list[PlannedAgent]:
        """The team as the strategy asks: under learned, each role with enough
        evidence starts at its recommended tier, from the runs of the runner
        that will run it."""
        if strategy != common_pb2.TIER_STRATEGY_LEARNED:
            return team
        name = resolve_runner_name(RUNNER_NAMES.get(runner), self._settings)
        return await self._learner.learned_team(template_id, team, name)

    @gated(AuditAction.ANALYTICS, Action.READ)
    async def GetAnalytics(
        self, request: executor_pb2.GetAnalyticsRequest, context: Context, principal: Principal
    ) -> executor_pb2.GetAnalyticsResponse:
        return await self._learner.analytics(request)

    @gated(AuditAction.RECOMMEND, Action.READ)
    async def GetRecommendations(
        self,
        request: executor_pb2.GetRecommendationsRequest,
        context: Context,
        principal: Principal,
    ) -> executor_pb2.GetRecommendationsResponse:
        _check_session_id(request.session_id)
        template = self._template(request.template_id)
        resolved = partial_answers(template, request.answers)
        # The template's own strategies: what the recommendations compare against.
        team = compose_team(template, resolved)
        on_behalf_of = acting_for(principal)
        try:
            found = await self._learner.recommend(
                template,
                answered=list(request.answers),
                resolved=resolved,
                team=team,
                runner=resolve_runner_name(None, self._settings),
                session_id=request.session_id,
                on_behalf_of=on_behalf_of,
                principal=principal,
                remaining=context.time_remaining(),
            )
        except grpc.aio.AioRpcError as error:
            # As in SearchRuns: a refusal is surfaced, never answered from
            # files, which would bypass the memory service's access control.
            if error.code() in CREDENTIAL_CODES:
                raise _refused(error, on_behalf_of) from None
            raise ServiceError(error.code(), f"memory service: {error.details()}") from None
        return executor_pb2.GetRecommendationsResponse(
            tiers=[choice_to_proto(choice) for choice in found.tiers],
            similar_runs=[_hit(pattern, score) for pattern, score in found.similar.found],
            suggested_answers=[suggestion_to_proto(s) for s in found.suggestions],
            target_success_rate=self._learner.policy.target,
            similar_runs_source=found.similar.source,
            similar_runs_degraded_reason=found.similar.degraded_reason,
        )

    @gated(AuditAction.AUDIT, Action.ADMIN, lambda q, r: ((), len(r.events)))
    async def ListAuditEvents(
        self, request: executor_pb2.ListAuditEventsRequest, context: Context, principal: Principal
    ) -> executor_pb2.ListAuditEventsResponse:
        records, token = await self.audit_log.read(
            None, request.filter, request.page_size, request.page_token, reader=principal.user_id
        )
        return executor_pb2.ListAuditEventsResponse(
            events=[record.to_proto() for record in records], next_page_token=token
        )


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


def _being_indexed(run_id: str, viewer: Viewer) -> bool:
    """Whether the run is on disk but maybe not in the local index yet (it is
    in progress until indexed) and started by someone else: left out of a
    list for that moment rather than shown unclassified. Any thread."""
    in_progress = IN_PROGRESS.get(run_id)
    return in_progress is not None and not viewer.sees(run_owner(in_progress.run))


def acting_for(principal: Principal) -> str | None:
    """The user the executor acts for at the memory service: the caller, or
    nobody (the executor itself) while authentication is off."""
    return None if principal is Principal.ANONYMOUS else principal.user_id


def _refused(error: grpc.aio.AioRpcError, on_behalf_of: str | None) -> ServiceError:
    """The memory service's refusal of a call made for the caller, as the caller's
    status, saying what an operator must check."""
    if on_behalf_of is None:
        whose = "the executor's own token (EXECUTOR_MEMORY_TOKEN)"
    else:
        whose = (
            "the executor acting for you (its entry in the memory service's tokens file "
            "needs the executor's namespace and `delegate: true`)"
        )
    return ServiceError(error.code(), f"memory service refused {whose}: {error.details()}")


def _planned_to_proto(agent: PlannedAgent) -> executor_pb2.PlannedAgent:
    return executor_pb2.PlannedAgent(
        role=agent.role,
        tier_strategy=strategy_to_proto(agent),
        first_tier=TIER_TO_PROTO[agent.tiers[0]],
        depends_on=agent.depends_on,
        stage=agent.stage,
        config=agent.config,
    )


def _within_page(hits: list[executor_pb2.RunHit]) -> list[executor_pb2.RunHit]:
    """The best hits a response can carry: a summary is up to 256 KiB, and a
    page of 100 would pass any message limit."""
    kept, _ = fit_page(hits, executor_pb2.RunHit.ByteSize, _hit_id, MAX_PAGE_BYTES)
    return kept


def _hit_id(hit: executor_pb2.RunHit) -> str:
    return hit.run_id


def _hit(pattern: memory_pb2.Pattern, score: float) -> executor_pb2.RunHit:
    hit = executor_pb2.RunHit(
        run_id=pattern.run_id or pattern.id,
        template_id=pattern.template_id,
        success=pattern.success,
        total_cost_usd=pattern.total_cost_usd,
        score=score,
        summary=pattern.content,
        runner=pattern.runner,
    )
    hit.create_time.CopyFrom(pattern.create_time)
    return hit


def _check_session_id(session_id: str) -> None:
    """INVALID_ARGUMENT for a session id the memory service would refuse."""
    if len(session_id) > MAX_SESSION_ID:
        raise invalid_argument([("session_id", f"longer than {MAX_SESSION_ID} characters")])
