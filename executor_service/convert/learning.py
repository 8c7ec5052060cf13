"""Learning results as their executor.v1 messages."""

from __future__ import annotations

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.convert.enums import TIER_TO_PROTO
from executor_service.learning.analytics import Analytics
from executor_service.learning.recommend import TierChoice
from executor_service.learning.stats import Proportion
from executor_service.learning.suggest import Suggestion
from executor_service.runs.forms import to_form_value


def proportion_to_proto(share: Proportion) -> executor_pb2.Proportion:
    """n = 0 leaves value and bounds at 0: there is no interval to claim."""
    lower, upper = share.interval
    return executor_pb2.Proportion(value=share.value, lower=lower, upper=upper, n=share.n)


def analytics_to_proto(result: Analytics) -> executor_pb2.GetAnalyticsResponse:
    """The GetAnalytics response."""
    cost = result.cost
    response = executor_pb2.GetAnalyticsResponse(
        run_count=result.run_count,
        success_rate=proportion_to_proto(result.success_rate),
        cost=executor_pb2.CostStats(
            mean_usd=cost.mean_usd,
            min_usd=cost.min_usd,
            max_usd=cost.max_usd,
            p50_usd=cost.p50_usd,
            p95_usd=cost.p95_usd,
            total_usd=cost.total_usd,
        ),
        cost_by_tier_usd=result.cost_by_tier_usd,
        mean_agents_per_run=result.mean_agents_per_run,
        role_tiers=[
            executor_pb2.RoleTierStats(
                role=row.role,
                tier=TIER_TO_PROTO[row.tier],
                success_rate=proportion_to_proto(row.success_rate),
                mean_cost_usd=row.mean_cost_usd,
            )
            for row in result.role_tiers
        ],
        failures=[
            executor_pb2.FailurePattern(role=row.role, error=row.error, count=row.count)
            for row in result.failures
        ],
    )
    for point in result.trend:
        added = response.trend.add(
            run_count=point.run_count,
            success_rate=point.success_rate,
            mean_cost_usd=point.mean_cost_usd,
        )
        added.bucket_start.FromDatetime(point.start)
    response.trend_bucket.FromTimedelta(result.trend_bucket)
    return response


def choice_to_proto(choice: TierChoice) -> executor_pb2.TierRecommendation:
    """One role's recommendation; no tier is TIER_UNSPECIFIED."""
    return executor_pb2.TierRecommendation(
        role=choice.role,
        recommended_tier=(
            TIER_TO_PROTO[choice.tier] if choice.tier is not None else common_pb2.TIER_UNSPECIFIED
        ),
        evidence=proportion_to_proto(choice.evidence),
        expected_saving_usd=choice.saving_usd,
        rationale=choice.rationale,
    )


def suggestion_to_proto(suggestion: Suggestion) -> executor_pb2.SuggestedAnswer:
    """One suggested answer."""
    return executor_pb2.SuggestedAnswer(
        question_id=suggestion.question_id,
        value=to_form_value(suggestion.value),
        source=suggestion.source,
        confidence=suggestion.confidence,
    )
