"""PlanWorkflow: validated answers, the team in order with tiers, a cost range."""

from __future__ import annotations

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.runs.forms import to_form_value
from tests.support.helpers import violations_of
from tests.support.stack import Stack


def plan_request(**answers: object) -> executor_pb2.PlanWorkflowRequest:
    return executor_pb2.PlanWorkflowRequest(
        template_id="python_package_publish",
        answers={key: to_form_value(value) for key, value in answers.items()},  # type: ignore[arg-type]
    )


async def test_plan_resolves_defaults_and_orders_the_team(stack: Stack) -> None:
    plan = await stack.executor_stub().PlanWorkflow(plan_request(package_name="demo"), timeout=5)
    assert plan.resolved_answers["package_name"].string_value == "demo"
    assert plan.resolved_answers["test_coverage_required"].number_value == 80
    roles = [agent.role for agent in plan.team]
    assert roles.index("package_builder") < roles.index("publisher")
    assert roles.index("version_manager") < roles.index("changelog_updater")
    stages = [agent.stage for agent in plan.team]
    assert stages == sorted(stages)
    publisher = next(agent for agent in plan.team if agent.role == "publisher")
    assert list(publisher.depends_on) == ["package_builder"]
    assert publisher.first_tier == common_pb2.TIER_CAPABLE
    assert publisher.config["target"] == "testpypi"
    assert 0 < plan.estimated_cost.min_usd < plan.estimated_cost.max_usd


async def test_answers_change_the_team(stack: Stack) -> None:
    plan = await stack.executor_stub().PlanWorkflow(
        plan_request(
            package_name="demo",
            has_tests=False,
            quality_checks=["bandit"],
            publish_target="none",
            version_bump="none",
        ),
        timeout=5,
    )
    roles = {agent.role for agent in plan.team}
    assert "test_runner" not in roles
    assert "publisher" not in roles
    assert "security_auditor" in roles
    changelog = next(agent for agent in plan.team if agent.role == "changelog_updater")
    assert list(changelog.depends_on) == [], "a dependency outside the team is dropped"


async def test_strategy_override_applies_to_every_agent(stack: Stack) -> None:
    request = plan_request(package_name="demo")
    request.tier_strategy = common_pb2.TIER_STRATEGY_PREMIUM_ONLY
    plan = await stack.executor_stub().PlanWorkflow(request, timeout=5)
    assert {agent.first_tier for agent in plan.team} == {common_pb2.TIER_PREMIUM}


async def test_plan_reports_every_violation(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.executor_stub().PlanWorkflow(
            plan_request(test_coverage_required=101, version_bump="huge"), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations_of(raised.value)) == {
        "package_name",
        "test_coverage_required",
        "version_bump",
    }
