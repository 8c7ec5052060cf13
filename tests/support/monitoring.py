"""The alert rules and the Grafana dashboard of deploy/k8s/components/monitoring,
read the way Prometheus and Grafana read them, for the tests.

Metric names come from the parsed PromQL (promql-parser): every vector
selector's name, so a name inside a string or a label never counts. A
selector that names its metric only by a regular expression cannot be
checked and is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "k8s" / "components" / "monitoring"
RULES_FILE = MONITORING / "prometheus-rules.yaml"
DASHBOARD_FILE = MONITORING / "dashboards" / "attune.json"
# Grafana's built-in interval variables, as a query would see them.
GRAFANA_INTERVALS = ("$__rate_interval", "$__interval", "$__range")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# The families the services export: the standard gRPC server ones and their own.
SERVICE_PREFIXES = ("attune_executor_", "attune_memory_", "grpc_server_")


@dataclass(frozen=True)
class AlertRule:
    group: str
    name: str
    expr: str
    for_: str | None
    labels: dict[str, str]
    annotations: dict[str, str]


def rule_groups(path: Path = RULES_FILE) -> list[dict[str, Any]]:
    """The PrometheusRule's groups, as written."""
    document = yaml.safe_load(path.read_text())
    groups: list[dict[str, Any]] = document["spec"]["groups"]
    return groups


def alert_rules(path: Path = RULES_FILE) -> list[AlertRule]:
    """Every alerting rule, in order."""
    return [
        AlertRule(
            group=group["name"],
            name=rule["alert"],
            expr=rule["expr"],
            for_=rule.get("for"),
            labels=dict(rule.get("labels", {})),
            annotations=dict(rule.get("annotations", {})),
        )
        for group in rule_groups(path)
        for rule in group["rules"]
        if "alert" in rule
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names of every vector selector in a PromQL expression."""
    return names_under(promql_parser.parse(expr))


def names_under(tree: promql_parser.Expr) -> set[str]:
    """The metric names of every vector selector in a parsed expression."""
    names: set[str] = set()
    unnamed: list[str] = []

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            else:
                exact = [
                    m.value
                    for m in node.matchers.matchers
                    if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal
                ]
                if exact:
                    names.update(exact)
                else:
                    unnamed.append(str(node))
        return True

    promql_parser.walk(tree, visit)
    if unnamed:
        raise ValueError(f"selectors without an exact metric name: {unnamed}")
    return names


# Labels Prometheus adds to every scraped series (the Operator adds namespace and pod).
TARGET_LABELS = frozenset({"namespace", "job", "pod", "instance", "service", "endpoint"})


def label_uses(expr: str) -> list[tuple[frozenset[str], str]]:
    """Each label an expression selects on or groups by, with the metrics it is
    expected on: a matcher's selector, or every selector under a `by`."""
    uses: list[tuple[frozenset[str], str]] = []

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            for matcher in node.matchers.matchers:
                if matcher.name != "__name__":
                    uses.append((frozenset({node.name}), matcher.name))
        modifier = node.modifier if isinstance(node, promql_parser.AggregateExpr) else None
        if modifier is not None and modifier.type == promql_parser.AggModifierType.By:
            assert isinstance(node, promql_parser.AggregateExpr)
            beneath = frozenset(names_under(node.expr))
            uses.extend((beneath, label) for label in modifier.labels)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return uses


def foreign(names: set[str]) -> set[str]:
    """The names no service family has (a typo, or another exporter's metric)."""
    return {name for name in names if not name.startswith(SERVICE_PREFIXES)}


def family(name: str) -> str:
    """The metric a series belongs to: a histogram's `_bucket`/`_sum`/`_count` dropped."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def grafana_to_promql(expr: str) -> str:
    """A panel's query as Grafana sends it: interval variables become a duration,
    any other `$variable` / `${variable}` a label value."""
    for variable in GRAFANA_INTERVALS:
        expr = expr.replace(variable, "5m")
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", "x", expr)


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    description: str
    expr: str


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # Collapsed rows hold theirs.


def load_dashboard(path: Path = DASHBOARD_FILE) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    """Every Prometheus query of every panel."""
    return [
        PanelQuery(panel["title"], panel.get("description", ""), target["expr"])
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def variable_metrics(dashboard: dict[str, Any]) -> set[str]:
    """Metric names of the template variables' `label_values(metric, label)` queries."""
    names = set()
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        if found := re.fullmatch(r"\s*label_values\((\w+)\s*,\s*\w+\)\s*", text):
            names.add(found[1])
        elif variable.get("type") == "query":
            raise ValueError(f"variable {variable.get('name')!r}: query {text!r} is not understood")
    return names
