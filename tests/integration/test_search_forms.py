"""The memory service and the executor's fallback understand a query from the
same templates' forms: with one custom templates folder given to both
(MEMORY_TEMPLATES_DIR and EXECUTOR_TEMPLATES_DIR), a question naming a
custom template, its option values, yes/no and number questions, and
built-in ones, gives the same applied filter and the same runs in the same
order on both sides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from attune.executor.v1 import executor_pb2
from executor_service.runs.forms import to_form_value
from executor_service.templates.models import Answer
from tests.support.helpers import run_to_end
from tests.support.stack import Stack, started

INCIDENT = """
id: incident_review
name: Review an incident
description: What happened, and what to change.
version: "1.0.0"
tags: [operations]
estimated_cost: {min_usd: 0.01, max_usd: 0.2}
estimated_duration_seconds: 120
questions:
  - {id: summary, text: "What happened?", type: text, required: true}
  - {id: severity, text: "How severe was the incident?", type: single_select,
     options: [sev1, sev2, sev3], default: sev3}
  - {id: affected_services, text: "Which services were affected?", type: multi_select,
     options: [api_gateway, billing, search_cluster], default: [api_gateway]}
  - {id: customer_facing, text: "Did customers notice?", type: boolean, default: false}
  - {id: downtime_minutes, text: "How many minutes of downtime?", type: number,
     min: 0, max: 10000, default: 0}
agent_rules:
  - {role: investigator, success_criteria: [a timeline], tier_strategy: cheap_only}
"""

RUNS: list[tuple[str, dict[str, Answer]]] = [
    ("incident_review", {"summary": "db failover", "severity": "sev1", "downtime_minutes": 95}),
    (
        "incident_review",
        {"summary": "slow search", "affected_services": ["search_cluster", "billing"]},
    ),
    ("incident_review", {"summary": "billing glitch", "customer_facing": True, "severity": "sev2"}),
    ("incident_review", {"summary": "cert expiry", "downtime_minutes": 12}),
    ("test_coverage_boost", {"target_path": "src", "test_coverage_target": 90}),
    ("test_coverage_boost", {"target_path": "lib", "test_framework": "jest"}),
    ("python_package_publish", {"package_name": "alpha", "test_coverage_required": 85}),
    ("python_package_publish", {"package_name": "beta", "publish_target": "pypi"}),
]

# (query, a term the applied filter must hold).
QUERIES: list[tuple[str, str]] = [
    ("incident reviews", 'template_id = "incident_review"'),
    ("sev1 incidents", 'form_responses.severity = "sev1"'),
    ("incidents affecting billing", 'form_responses.affected_services = "billing"'),
    ("affected search cluster", 'form_responses.affected_services = "search_cluster"'),
    ("customer facing", "form_responses.customer_facing = true"),
    ("downtime over 60 minutes", "form_responses.downtime_minutes > 60"),
    ("incidnet reviews with downtime under 30", "form_responses.downtime_minutes < 30"),
    (
        "coverage above 80",
        "form_responses.test_coverage_required > 80 OR form_responses.test_coverage_target > 80",
    ),
    ("test coverage boosts with jest", 'form_responses.test_framework = "jest"'),
    ("published to pypi", 'form_responses.publish_target = "pypi"'),
]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "incident.yaml").write_text(INCIDENT)
    overrides: dict[str, object] = {"templates_dir": templates}
    pair = Stack(tmp_path, executor_overrides=dict(overrides), memory_overrides=overrides)
    async with started(pair) as running:
        yield running


async def test_memory_and_the_fallback_understand_custom_forms_alike(stack: Stack) -> None:
    stub = stack.executor_stub()
    for seed, (template_id, answers) in enumerate(RUNS):
        request = executor_pb2.RunWorkflowRequest(
            template_id=template_id,
            answers={key: to_form_value(value) for key, value in answers.items()},
            seed=seed,
        )
        events = await run_to_end(stub, request)
        assert events[-1].run_finished.run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_STORED
    problems: list[tuple[object, ...]] = []
    for query, term in QUERIES:
        seen: list[tuple[list[str], str]] = []
        for mode in (
            executor_pb2.SEARCH_RUNS_MODE_MEMORY,
            executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES,
        ):
            response = await stub.SearchRuns(
                executor_pb2.SearchRunsRequest(query=query, mode=mode, page_size=50), timeout=5
            )
            seen.append(([hit.run_id for hit in response.hits], response.applied_filter))
        memory, local = seen
        if memory != local:
            problems.append((query, "memory and fallback differ", memory, local))
        if term not in memory[1]:
            problems.append((query, "not understood", term, memory[1]))
        if not memory[0]:
            problems.append((query, "no runs found", memory[1]))
    assert not problems, "\n".join(map(repr, problems))
