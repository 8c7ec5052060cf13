"""The ExecutorService servicer: its state, and the template, status and audit-log
RPCs; the run, reading, search, learning and watching RPCs come from executor_service.rpc.
RPCs not listed there or here answer UNIMPLEMENTED."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service import __version__
from executor_service.convert.templates import template_to_proto
from executor_service.memory.delivery import PatternDeliverer
from executor_service.memory.local_index import LocalIndex
from executor_service.rpc.base import Context
from executor_service.rpc.gate import gated
from executor_service.rpc.learning import LearningRpcs
from executor_service.rpc.reading import ReadingRpcs
from executor_service.rpc.running import RunningRpcs
from executor_service.rpc.searching import SearchingRpcs
from executor_service.rpc.watching import WatchingRpcs
from executor_service.runners.factory import Runners
from executor_service.runs.admission import RunAdmission
from executor_service.runs.journal import Journals
from executor_service.runs.policy import RunPolicy
from executor_service.runs.spend_limit import SpendLimit
from executor_service.runs.store import RunStore
from executor_service.runs.workflow_run import InFlight
from executor_service.settings import ExecutorSettings
from executor_service.templates.catalog import Catalog
from memory_service.access.audit import AuditAction
from memory_service.access.audit_buffer import BufferedAudit
from memory_service.access.denials import DenialLimiter
from memory_service.security.identity import Action, Authenticator, Principal
from memory_service.servicekit.paging import decode_token, encode_token, page_bounds

# What each call touched, for its audit record.


def _count_of(field: str) -> Callable[[Any, Any], tuple[Sequence[str], int]]:
    def summary(request: Any, response: Any) -> tuple[Sequence[str], int]:
        return (), len(getattr(response, field))

    return summary


class ExecutorServicer(
    RunningRpcs,
    ReadingRpcs,
    SearchingRpcs,
    LearningRpcs,
    WatchingRpcs,
    executor_pb2_grpc.ExecutorServiceServicer,
):
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
        self.in_flight = InFlight()  # Stopped together at shutdown (server.py).
        self._journals = Journals(runs.root, runs.replica)

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
