"""Every metric the alert rules and the dashboard query is one the services
really export (issue 16: "every alert expression refers only to metrics
that exist").

Both services run as processes with their metrics ports on (port 0), a run
and a search go through, then both endpoints are scraped: the names a query
may use are each endpoint's series (tests/support/metrics_scrape.py), and
every selector of every rule and panel (tests/support/monitoring.py) must
be among them.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.cli.scrape import scrape
from tests.support.helpers import run_request
from tests.support.metrics_scrape import (
    pair_with_metrics,
    series_labels,
    series_names,
)
from tests.support.monitoring import (
    TARGET_LABELS,
    AlertRule,
    alert_rules,
    grafana_to_promql,
    label_uses,
    load_dashboard,
    metric_names,
    panel_queries,
    variable_metrics,
)

pytestmark = pytest.mark.e2e


@dataclass
class Exported:
    """What the services export after a run and a search."""

    names: set[str]  # Every series name a query may use, both services.
    by_service: dict[str, set[str]]
    labels: dict[str, set[str]]  # Label names per series name, where it has samples.


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    root = tmp_path_factory.mktemp("metric-names")
    with pair_with_metrics(root) as (memory, executor):
        with grpc.insecure_channel(executor.address) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            request = run_request(package_name="names")
            request.runner, request.seed = common_pb2.RUNNER_SIMULATED, 7
            assert list(stub.RunWorkflow(request, timeout=30))
            stub.SearchRuns(executor_pb2.SearchRunsRequest(query="names"), timeout=10)
        scrapes = {
            "executor": scrape(executor.metrics_url, 10),
            "memory": scrape(memory.metrics_url, 10),
        }
    by_service = {name: series_names(found) for name, found in scrapes.items()}
    labels: dict[str, set[str]] = {}
    for found in scrapes.values():
        for series, names in series_labels(found).items():
            labels.setdefault(series, set()).update(names)
    return Exported(by_service["executor"] | by_service["memory"], by_service, labels)


def _queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every rule and every dashboard panel query."""
    rules = [(f"alert {rule.name}", rule.expr) for rule in alert_rules()]
    queries = panel_queries(load_dashboard())
    panels = [(f"panel {q.panel}", grafana_to_promql(q.expr)) for q in queries]
    return rules + panels


def _missing(names: set[str], exported: Exported) -> set[str]:
    return names - exported.names


def test_both_endpoints_export_their_own_families(exported: Exported) -> None:
    assert "attune_executor_runs_total" in exported.by_service["executor"]
    assert "attune_memory_ready" in exported.by_service["memory"]
    for names in exported.by_service.values():
        assert "grpc_server_handled_total" in names


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule.name)
def test_alert_names_only_exported_metrics(rule: AlertRule, exported: Exported) -> None:
    assert _missing(metric_names(rule.expr), exported) == set()


def test_every_dashboard_query_names_only_exported_metrics(exported: Exported) -> None:
    dashboard = load_dashboard()
    missing = {
        f"{query.panel}: {name}"
        for query in panel_queries(dashboard)
        for name in _missing(metric_names(grafana_to_promql(query.expr)), exported)
    }
    missing |= {f"variable: {name}" for name in _missing(variable_metrics(dashboard), exported)}
    assert missing == set()


def test_a_name_nobody_exports_is_reported_missing(exported: Exported) -> None:
    # The comparison itself can fail: a near miss of a real name is caught.
    assert _missing({"attune_executor_run_total"}, exported) == {"attune_executor_run_total"}


def _wrong_labels(queries: list[tuple[str, str]], exported: Exported) -> set[str]:
    """Labels selected on or grouped by that none of the metrics beneath carry.
    Metrics with no sample yet (e.g. Redis calls on the embedded store) cannot tell."""
    wrong = set()
    for where, expr in queries:
        for metrics, label in label_uses(expr):
            seen = [exported.labels[m] for m in metrics if m in exported.labels]
            if label in TARGET_LABELS | {"le"} or not seen:
                continue
            if not any(label in labels for labels in seen):
                wrong.add(f"{where}: {label} on {sorted(metrics)}")
    return wrong


def test_every_label_a_query_uses_is_on_its_metrics(exported: Exported) -> None:
    # A `by (...)` or a matcher on a label the metric lacks would match nothing.
    assert _wrong_labels(_queries(), exported) == set()


def test_a_label_the_metric_lacks_is_reported(exported: Exported) -> None:
    query = ("made up", "sum by (tiers) (rate(attune_executor_agent_attempts_total[5m]))")
    assert _wrong_labels([query], exported) == {
        "made up: tiers on ['attune_executor_agent_attempts_total']"
    }
