"""What every group of ExecutorService RPCs shares: the servicer's state, the
template lookup, the learner, and how a call made at the memory service for a
caller is named and refused."""

from __future__ import annotations

import functools
from typing import Any

import grpc

from attune.common.v1 import common_pb2
from executor_service.convert.enums import RUNNER_NAMES
from executor_service.learning.service import Learner
from executor_service.memory.client import MAX_SESSION_ID, MemoryClient
from executor_service.memory.delivery import PatternDeliverer
from executor_service.memory.local_index import LocalIndex
from executor_service.runners.factory import Runners, resolve_runner_name
from executor_service.runs.admission import RunAdmission
from executor_service.runs.composition import PlannedAgent
from executor_service.runs.journal import Journals
from executor_service.runs.policy import RunPolicy
from executor_service.runs.spend_limit import SpendLimit
from executor_service.runs.store import RunStore
from executor_service.runs.workflow_run import InFlight
from executor_service.settings import ExecutorSettings
from executor_service.templates.catalog import Catalog
from executor_service.templates.form_catalog import form_catalog
from executor_service.templates.models import Template
from memory_service.access.audit_buffer import BufferedAudit
from memory_service.access.denials import DenialLimiter
from memory_service.search.forms import FormCatalog
from memory_service.security.identity import Authenticator, Principal
from memory_service.servicekit.errors import ServiceError, invalid_argument, not_found

Context = grpc.aio.ServicerContext[Any, Any]

# A page of runs stays well under the 8 MiB message limit, whatever its size.
MAX_PAGE_BYTES = 4 * 1024 * 1024


class RpcBase:
    """The state the RPC groups read; ExecutorServicer sets it."""

    authenticator: Authenticator
    audit_log: BufferedAudit
    denials: DenialLimiter | None
    namespace: str
    _settings: ExecutorSettings
    _runners: Runners
    _catalog: Catalog
    _runs: RunStore
    _deliverer: PatternDeliverer
    _local_index: LocalIndex
    _memory: MemoryClient
    _admission: RunAdmission
    _policy: RunPolicy
    _spend: SpendLimit
    in_flight: InFlight
    _journals: Journals

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

    @functools.cached_property
    def _forms(self) -> FormCatalog:
        """The templates' forms, as query understanding reads them (the
        memory service reads the same files: see memory_service/search/forms.py)."""
        return form_catalog(self._catalog)

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


def acting_for(principal: Principal) -> str | None:
    """The user the executor acts for at the memory service: the caller, or
    nobody (the executor itself) while authentication is off."""
    return None if principal is Principal.ANONYMOUS else principal.user_id


def refused(error: grpc.aio.AioRpcError, on_behalf_of: str | None) -> ServiceError:
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


def check_session_id(session_id: str) -> None:
    """INVALID_ARGUMENT for a session id the memory service would refuse."""
    if len(session_id) > MAX_SESSION_ID:
        raise invalid_argument([("session_id", f"longer than {MAX_SESSION_ID} characters")])
