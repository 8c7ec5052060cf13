"""User templates from EXECUTOR_TEMPLATES_DIR are served beside the built-ins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from tests.support.stack import Stack, running_stack

VALID = """
id: team_retro
name: Team retrospective
description: Summarise a sprint and propose actions.
version: "1.0.0"
tags: [process]
estimated_cost: {min_usd: 0.01, max_usd: 0.2}
estimated_duration_seconds: 120
questions:
  - {id: sprint_name, text: "Which sprint?", type: text, required: true}
agent_rules:
  - role: summariser
    success_criteria: [every ticket is mentioned]
    tier_strategy: cheap_only
"""

INVALID = VALID.replace("team_retro", "broken_retro").replace("cheap_only", "cheapest")


@pytest.fixture
async def stack_with_templates(tmp_path: Path) -> AsyncIterator[Stack]:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "retro.yaml").write_text(VALID)
    (templates / "broken.yaml").write_text(INVALID)
    async with running_stack(tmp_path, templates_dir=templates) as running:
        yield running


async def test_valid_user_templates_are_served_and_invalid_ones_are_not(
    stack_with_templates: Stack,
) -> None:
    stub = stack_with_templates.executor_stub()
    listed = await stub.ListTemplates(executor_pb2.ListTemplatesRequest(), timeout=5)
    ids = [template.id for template in listed.templates]
    assert "team_retro" in ids
    assert "python_package_publish" in ids
    assert "broken_retro" not in ids
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetTemplate(
            executor_pb2.GetTemplateRequest(template_id="broken_retro"), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    plan = await stub.PlanWorkflow(
        executor_pb2.PlanWorkflowRequest(
            template_id="team_retro",
            answers={"sprint_name": common_pb2.FormValue(string_value="S42")},
        ),
        timeout=5,
    )
    assert [agent.role for agent in plan.team] == ["summariser"]
