"""GetAnalytics and GetRecommendations: what the executor learned from its runs, as RPCs."""

from __future__ import annotations

import grpc

from attune.executor.v1 import executor_pb2
from executor_service.convert.learning import choice_to_proto, suggestion_to_proto
from executor_service.learning.requests import partial_answers
from executor_service.memory.client import CREDENTIAL_CODES
from executor_service.rpc.base import Context, RpcBase, acting_for, check_session_id, refused
from executor_service.rpc.gate import gated
from executor_service.rpc.searching import run_hit
from executor_service.runners.factory import resolve_runner_name
from executor_service.runs.composition import compose_team
from memory_service.access.audit import AuditAction
from memory_service.security.identity import Action, Principal
from memory_service.servicekit.errors import ServiceError


class LearningRpcs(RpcBase):
    """Answers from the history of runs."""

    @gated(AuditAction.ANALYTICS, Action.READ)
    async def GetAnalytics(
        self, request: executor_pb2.GetAnalyticsRequest, context: Context, principal: Principal
    ) -> executor_pb2.GetAnalyticsResponse:
        return await self._learner.analytics(request, principal)

    @gated(AuditAction.RECOMMEND, Action.READ)
    async def GetRecommendations(
        self,
        request: executor_pb2.GetRecommendationsRequest,
        context: Context,
        principal: Principal,
    ) -> executor_pb2.GetRecommendationsResponse:
        check_session_id(request.session_id)
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
                raise refused(error, on_behalf_of) from None
            raise ServiceError(error.code(), f"memory service: {error.details()}") from None
        return executor_pb2.GetRecommendationsResponse(
            tiers=[choice_to_proto(choice) for choice in found.tiers],
            similar_runs=[run_hit(pattern, score) for pattern, score in found.similar.found],
            suggested_answers=[suggestion_to_proto(s) for s in found.suggestions],
            target_success_rate=self._learner.policy.target,
            similar_runs_source=found.similar.source,
            similar_runs_degraded_reason=found.similar.degraded_reason,
        )
