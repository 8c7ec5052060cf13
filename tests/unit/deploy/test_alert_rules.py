"""The PrometheusRule of components/monitoring, as Prometheus would load it.

Every expression parses (promql-parser, the PromQL grammar of Prometheus
2.45), names its metrics by exact name, and only the services' own; the
rule groups have the shape Prometheus and Alertmanager need; annotations
use only labels the expression's result keeps. Whether the metrics exist
in the running services is tests/e2e/test_monitoring_metric_names.py.
"""

from __future__ import annotations

import re
from datetime import timedelta

import promql_parser
import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor_service.cli import health_figures
from tests.support.monitoring import AlertRule, alert_rules, foreign, metric_names, rule_groups
from tests.support.promql_labels import comparisons, result_labels

RULES = alert_rules()
BY_NAME = {rule.name: rule for rule in RULES}
SEVERITIES = {"critical", "warning"}
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook")
RULE_KEYS = {"alert", "expr", "for", "labels", "annotations"}
# The alerts issue 16 asks for, each by the rule that answers it.
ASKED_FOR = {
    "outbox growing for 10 minutes": "AttuneOutboxGrowing",
    "breaker open": "AttuneBreakerOpen",
    "memory not ready": "AttuneMemoryNotReady",
    "error ratio by method": "AttuneHighErrorRatio",
    "search p95 above a threshold (executor)": "AttuneExecutorSearchSlow",
    "search p95 above a threshold (memory)": "AttuneMemorySearchSlow",
    "encryption key missing": "AttuneEncryptionKeyMissing",
}


def test_every_alert_asked_for_is_there() -> None:
    assert {name for name in ASKED_FOR.values() if name not in BY_NAME} == set()


def test_groups_are_named_once_and_hold_only_alerts_of_known_keys() -> None:
    groups = rule_groups()
    names = [group["name"] for group in groups]
    assert len(names) == len(set(names)), names
    assert all(re.fullmatch(r"attune\.[a-z]+", name) for name in names), names
    for group in groups:
        assert group["rules"], f"group {group['name']} is empty"
        for rule in group["rules"]:
            assert set(rule) <= RULE_KEYS, (
                f"{rule.get('alert')}: unknown keys {set(rule) - RULE_KEYS}"
            )


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_rule_is_complete(rule: AlertRule) -> None:
    assert re.fullmatch(r"Attune[A-Z][A-Za-z]+", rule.name), rule.name
    assert list(BY_NAME).count(rule.name) == 1
    # A `for` keeps one bad scrape from paging anyone.
    assert rule.for_ is not None, f"{rule.name} has no for:"
    assert promql_parser.parse_duration(rule.for_) >= timedelta(minutes=1)
    assert rule.labels.get("severity") in SEVERITIES, rule.labels
    for key in REQUIRED_ANNOTATIONS:
        assert len(rule.annotations.get(key, "").split()) >= 3, f"{rule.name}: {key} too thin"


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_expression_parses_and_names_only_the_services_metrics(rule: AlertRule) -> None:
    names = metric_names(rule.expr)
    assert names, f"{rule.name} names no metric"
    assert foreign(names) == set()


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_annotations_use_only_labels_the_result_keeps(rule: AlertRule) -> None:
    kept = result_labels(promql_parser.parse(rule.expr))
    used = {
        label
        for text in rule.annotations.values()
        for label in re.findall(r"\$labels\.(\w+)", text)
    }
    if kept is not None:
        assert used <= kept, f"{rule.name}: {sorted(used - kept)} aggregated away"


def _threshold(rule_name: str, lhs_type: type) -> float:
    found = [
        value
        for lhs, operator, value in comparisons(promql_parser.parse(BY_NAME[rule_name].expr))
        if isinstance(lhs, lhs_type) and operator == ">"
    ]
    assert len(found) == 1, found
    return found[0]


def test_attune_status_judges_with_the_rules_thresholds() -> None:
    assert _threshold("AttuneHighErrorRatio", promql_parser.ParenExpr) == (
        health_figures.SERVER_ERROR_RATIO_LIMIT
    )
    assert _threshold("AttuneExecutorSearchSlow", promql_parser.Call) == (
        health_figures.EXECUTOR_SEARCH_P95_LIMIT_SECONDS
    )
    assert _threshold("AttuneMemorySearchSlow", promql_parser.Call) == (
        health_figures.MEMORY_SEARCH_P95_LIMIT_SECONDS
    )


def excluded_codes(expr: str) -> set[str]:
    """The grpc_code values every `grpc_code!~` matcher of the expression excludes."""
    codes: set[str] = set()

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            for matcher in node.matchers.matchers:
                if matcher.name == "grpc_code" and matcher.op == promql_parser.MatchOp.NotRe:
                    codes.update(matcher.value.split("|"))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return codes


def test_error_ratio_leaves_out_exactly_the_codes_attune_status_leaves_out() -> None:
    assert excluded_codes(BY_NAME["AttuneHighErrorRatio"].expr) == set(health_figures.CLIENT_CODES)


# metric_names itself, on expressions built from known parts.
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True).filter(
    lambda name: (
        name
        not in {
            "and",
            "or",
            "unless",
            "by",
            "without",
            "on",
            "ignoring",
            "bool",
            "offset",
            "inf",
            "nan",
            "group_left",
            "group_right",
            "atan2",
        }
    )
)


def _selector(name: str, form: int) -> tuple[str, frozenset[str]]:
    text = (name, f'{name}{{job="x"}}', f'{{__name__="{name}"}}')[form]
    return text, frozenset({name})


def _combined(
    inner: st.SearchStrategy[tuple[str, frozenset[str]]],
) -> st.SearchStrategy[tuple[str, frozenset[str]]]:
    operators = st.sampled_from(["and", "/", "or", "unless", "+"])
    return st.one_of(
        inner.map(lambda e: (f"sum by (job) ({e[0]})", e[1])),
        inner.map(lambda e: (f"({e[0]}) > 0.5", e[1])),
        st.tuples(inner, operators, inner).map(
            lambda t: (f"({t[0][0]}) {t[1]} ({t[2][0]})", t[0][1] | t[2][1])
        ),
    )


EXPRESSIONS = st.recursive(st.builds(_selector, NAMES, st.integers(0, 2)), _combined, max_leaves=6)


@given(EXPRESSIONS)
def test_metric_names_finds_every_selector_and_nothing_else(
    built: tuple[str, frozenset[str]],
) -> None:
    text, expected = built
    assert metric_names(text) == expected


def test_metric_names_refuses_a_selector_it_cannot_name() -> None:
    with pytest.raises(ValueError, match="without an exact metric name"):
        metric_names('rate({__name__=~"attune_.+"}[5m])')
