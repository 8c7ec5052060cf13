"""The executor's fallback reads the templates' forms as the memory service
does: its own loaded catalog, converted, equals the catalog the memory
service reads from the same files."""

from __future__ import annotations

from pathlib import Path

from executor_service.templates.catalog import load_catalog
from executor_service.templates.form_catalog import form_catalog
from memory_service.search.forms import load_forms

CUSTOM = """
id: incident_review
name: Review an incident
description: What happened, and what to change.
version: "1.0.0"
tags: [operations, incidents]
estimated_cost: {min_usd: 0.01, max_usd: 0.2}
estimated_duration_seconds: 120
questions:
  - {id: severity, text: "How severe was the incident?", type: single_select,
     options: [sev1, sev2, sev3]}
  - {id: affected_services, text: "Which services were affected?", type: multi_select,
     options: [api_gateway, billing, search_cluster]}
  - {id: customer_facing, text: "Did customers notice?", type: boolean}
  - {id: downtime_minutes, text: "How many minutes of downtime?", type: number, min: 0, max: 10000}
  - {id: runbook_followed, text: "What share of the runbook was followed, in percent?",
     type: number, min: 0, max: 100}
agent_rules:
  - {role: investigator, success_criteria: [a timeline]}
"""


def test_the_executor_and_the_memory_service_read_the_same_forms(tmp_path: Path) -> None:
    (tmp_path / "incident.yaml").write_text(CUSTOM)
    executor = load_catalog(tmp_path)
    assert executor.problems == []
    memory = load_forms(tmp_path)
    assert memory.problems == ()
    converted = form_catalog(executor.catalog)
    assert converted.templates == memory.catalog.templates
    incident = converted.get("incident_review")
    assert incident is not None
    assert [q.unit for q in incident.questions] == ["", "", "", "", "percent"]
    assert incident.questions[3].maximum == 10000.0
