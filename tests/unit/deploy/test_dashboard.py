"""The Grafana dashboard of components/monitoring: valid JSON Grafana can
import, every query valid PromQL once Grafana's variables are filled in,
and a panel for each alert on the same metrics as its rule."""

from __future__ import annotations

import json
from typing import Any

import promql_parser
import pytest

from tests.support.monitoring import (
    DASHBOARD_FILE,
    AlertRule,
    PanelQuery,
    alert_rules,
    family,
    foreign,
    grafana_to_promql,
    load_dashboard,
    metric_names,
    panel_queries,
    variable_metrics,
)

DASHBOARD = load_dashboard()
QUERIES = panel_queries(DASHBOARD)
# What issue 16's operators look at, by the metric each panel must query.
SUBJECTS = {
    "requests per method": "grpc_server_handled_total",
    "latency per method": "grpc_server_handling_seconds",
    "runs by status": "attune_executor_runs_total",
    "attempts by tier": "attune_executor_agent_attempts_total",
    "cost": "attune_executor_run_cost_usd",
    "outbox": "attune_executor_outbox_depth",
    "breaker": "attune_executor_breaker_state",
    "executor search latency": "attune_executor_search_seconds",
    "memory search latency": "attune_memory_search_seconds",
}


def _all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for panel in panels:
        found.append(panel)
        found += _all_panels(panel.get("panels", []))
    return found


def test_file_is_json_grafana_imports() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    panels = _all_panels(dashboard["panels"])
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        assert panel["title"]
        assert panel["type"]
        position = panel["gridPos"]
        assert position["x"] >= 0, panel["title"]
        assert position["x"] + position["w"] <= 24, panel["title"]


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in _all_panels(DASHBOARD["panels"]):
        position = panel["gridPos"]
        for x in range(position["x"], position["x"] + position["w"]):
            for y in range(position["y"], position["y"] + position["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_query_uses_the_datasource_variable() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in _all_panels(DASHBOARD["panels"]):
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.panel}: {q.expr[:40]}")
def test_query_parses_and_names_only_the_services_metrics(query: PanelQuery) -> None:
    names = metric_names(grafana_to_promql(query.expr))
    assert names
    assert foreign(names) == set()


def test_variables_query_the_services_metrics() -> None:
    names = variable_metrics(DASHBOARD)
    assert names
    assert foreign(names) == set()


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule.name)
def test_each_alert_has_its_panel_on_the_same_metrics(rule: AlertRule) -> None:
    wanted = {family(name) for name in metric_names(rule.expr)}
    panels: dict[str, set[str]] = {}
    for query in QUERIES:
        if rule.name in query.description:
            names = metric_names(grafana_to_promql(query.expr))
            panels.setdefault(query.panel, set()).update(family(name) for name in names)
    assert panels, f"no panel's description names {rule.name}"
    assert any(wanted <= found for found in panels.values()), (rule.name, wanted, panels)


@pytest.mark.parametrize(("subject", "metric"), SUBJECTS.items())
def test_operators_subjects_have_a_panel(subject: str, metric: str) -> None:
    assert any(
        metric
        in {family(name) for name in metric_names(grafana_to_promql(query.expr))}
        | metric_names(grafana_to_promql(query.expr))
        for query in QUERIES
    ), subject


def test_grafana_variables_are_substituted_into_valid_promql() -> None:
    text = grafana_to_promql('rate(x{namespace="$namespace", pod=~"${pod}"}[$__rate_interval])')
    assert text == 'rate(x{namespace="x", pod=~"x"}[5m])'
    promql_parser.parse(text)
