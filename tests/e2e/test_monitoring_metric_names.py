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

from collections.abc import Iterator

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from tests.support.helpers import run_request
from tests.support.metrics_scrape import (
    metrics_endpoint,
    pair_with_metrics,
    scraped_metric_names,
)
from tests.support.monitoring import (
    AlertRule,
    alert_rules,
    grafana_to_promql,
    load_dashboard,
    metric_names,
    panel_queries,
    variable_metrics,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, set[str]]]:
    """The series names each service exports after a run and a search."""
    root = tmp_path_factory.mktemp("metric-names")
    with pair_with_metrics(root) as (memory, executor):
        with grpc.insecure_channel(executor.address) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            request = run_request(package_name="names")
            request.runner, request.seed = common_pb2.RUNNER_SIMULATED, 7
            assert list(stub.RunWorkflow(request, timeout=30))
            stub.SearchRuns(executor_pb2.SearchRunsRequest(query="names"), timeout=10)
        yield {
            "executor": scraped_metric_names(metrics_endpoint(executor)),
            "memory": scraped_metric_names(metrics_endpoint(memory)),
        }


def _missing(names: set[str], exported: dict[str, set[str]]) -> set[str]:
    return names - exported["executor"] - exported["memory"]


def test_both_endpoints_export_their_own_families(exported: dict[str, set[str]]) -> None:
    assert "attune_executor_runs_total" in exported["executor"]
    assert "attune_memory_ready" in exported["memory"]
    for names in exported.values():
        assert "grpc_server_handled_total" in names


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule.name)
def test_alert_names_only_exported_metrics(rule: AlertRule, exported: dict[str, set[str]]) -> None:
    assert _missing(metric_names(rule.expr), exported) == set()


def test_every_dashboard_query_names_only_exported_metrics(exported: dict[str, set[str]]) -> None:
    dashboard = load_dashboard()
    missing = {
        f"{query.panel}: {name}"
        for query in panel_queries(dashboard)
        for name in _missing(metric_names(grafana_to_promql(query.expr)), exported)
    }
    missing |= {f"variable: {name}" for name in _missing(variable_metrics(dashboard), exported)}
    assert missing == set()


def test_a_name_nobody_exports_is_reported_missing(exported: dict[str, set[str]]) -> None:
    # The comparison itself can fail: a near miss of a real name is caught.
    assert _missing({"attune_executor_run_total"}, exported) == {"attune_executor_run_total"}
