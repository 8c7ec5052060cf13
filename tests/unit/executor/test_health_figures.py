"""`attune status`'s figures from metrics: quantiles from histogram buckets,
error ratios per method, and the URL forms it accepts.

Expositions here are written by prometheus_client itself (a registry, then
generate_latest) and read back by the CLI's parser, so serialisation and
parsing are part of every property.
"""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from executor_service.cli.health_figures import (
    CLIENT_CODES,
    executor_figures,
    executor_problems,
    histogram_quantile,
    memory_figures,
    memory_problems,
    method_calls,
    quantile_by,
)
from executor_service.cli.scrape import Exposition, ScrapeError, metrics_url, parse_exposition

BOUNDS = st.lists(
    st.floats(min_value=0.001, max_value=1000, allow_nan=False),
    min_size=1,
    max_size=12,
    unique=True,
).map(sorted)
OBSERVATIONS = st.lists(
    st.floats(min_value=0, max_value=2000, allow_nan=False), min_size=1, max_size=200
)
QUANTILES = st.floats(min_value=0.01, max_value=1.0)
CODES = [
    "OK",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "UNAVAILABLE",
    "INTERNAL",
    "DEADLINE_EXCEEDED",
    "CANCELLED",
]


def exposed(registry: CollectorRegistry) -> Exposition:
    return parse_exposition(generate_latest(registry).decode())


def histogram_of(bounds: list[float], observations: list[float]) -> Exposition:
    registry = CollectorRegistry()
    histogram = Histogram(
        "attune_memory_search_seconds", "h", ["mode"], buckets=bounds, registry=registry
    )
    for value in observations:
        histogram.labels("keyword").observe(value)
    return exposed(registry)


def true_quantile(q: float, observations: list[float]) -> float:
    """The observation of rank ceil(q * n): the one Prometheus's estimate brackets."""
    ordered = sorted(observations)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@given(BOUNDS, OBSERVATIONS, QUANTILES)
def test_estimate_lies_in_the_bucket_of_the_true_quantile(
    bounds: list[float], observations: list[float], q: float
) -> None:
    p95 = quantile_by(histogram_of(bounds, observations), "attune_memory_search_seconds", "mode", q)
    estimate, truth = p95["keyword"], true_quantile(q, observations)
    assert estimate is not None
    assert p95["all"] == estimate  # One series: the sum over it is itself.
    if truth > bounds[-1]:
        # Past every finite bound Prometheus answers the highest one.
        assert estimate == bounds[-1]
        return
    upper = min(b for b in bounds if truth <= b)
    lower = max([0.0] + [b for b in bounds if b < truth])
    assert lower <= estimate <= upper


@given(BOUNDS, OBSERVATIONS, QUANTILES, QUANTILES)
def test_estimate_never_falls_as_the_quantile_rises(
    bounds: list[float], observations: list[float], q1: float, q2: float
) -> None:
    exposition = histogram_of(bounds, observations)
    low, high = sorted((q1, q2))
    first = quantile_by(exposition, "attune_memory_search_seconds", "mode", low)["all"]
    second = quantile_by(exposition, "attune_memory_search_seconds", "mode", high)["all"]
    assert first is not None
    assert second is not None
    assert first <= second


def test_quantile_interpolates_within_the_bucket_as_prometheus_does() -> None:
    # 10 observations: 4 up to 0.1, 6 more up to 0.5; rank 9.5 is 5.5 of 6 into (0.1, 0.5].
    buckets = [(0.1, 4.0), (0.5, 10.0), (math.inf, 10.0)]
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.1 + 0.4 * 5.5 / 6)
    assert histogram_quantile(0.2, buckets) == pytest.approx(0.1 * 2 / 4)  # From 0 in the first.


def test_quantile_without_observations_or_bounds_is_unknown() -> None:
    assert histogram_quantile(0.95, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.95, [(math.inf, 3.0)]) is None
    assert histogram_quantile(0.95, [(0.1, 3.0)]) is None  # No +Inf: not a whole histogram.
    with pytest.raises(ValueError, match="quantile"):
        histogram_quantile(1.5, [(0.1, 1.0), (math.inf, 1.0)])


CALLS = st.dictionaries(
    st.tuples(st.sampled_from(["RunWorkflow", "GetRun", "SearchRuns"]), st.sampled_from(CODES)),
    st.integers(min_value=1, max_value=1000),
    max_size=15,
)


@given(CALLS, st.integers(min_value=0, max_value=50))
def test_error_ratios_count_server_errors_only_and_leave_out_health(
    calls: dict[tuple[str, str], int], health_checks: int
) -> None:
    registry = CollectorRegistry()
    handled = Counter(
        "grpc_server_handled",
        "h",
        ["grpc_service", "grpc_type", "grpc_method", "grpc_code"],
        registry=registry,
    )
    for (method, code), count in calls.items():
        handled.labels("attune.executor.v1.ExecutorService", "unary", method, code).inc(count)
    if health_checks:
        handled.labels("grpc.health.v1.Health", "unary", "Check", "OK").inc(health_checks)
    found = {c.method: c for c in method_calls(exposed(registry))}
    assert set(found) == {method for method, _ in calls}
    for method, figures in found.items():
        mine = {code: n for (m, code), n in calls.items() if m == method}
        assert figures.total == sum(mine.values())
        assert figures.not_ok == sum(n for code, n in mine.items() if code != "OK")
        assert figures.server_errors == sum(
            n for code, n in mine.items() if code not in CLIENT_CODES
        )
        ratio = figures.server_error_ratio
        assert ratio is not None
        assert 0 <= ratio <= 1


def contract_registry(**values: float) -> CollectorRegistry:
    """Gauges of the metrics contract, set to the values given."""
    registry = CollectorRegistry()
    for name, value in values.items():
        Gauge(name, name, registry=registry).set(value)
    return registry


def test_a_healthy_pair_shows_no_problem() -> None:
    executor = exposed(
        contract_registry(
            attune_executor_breaker_state=0,
            attune_executor_memory_reachable=1,
            attune_executor_outbox_depth=0,
            attune_executor_outbox_oldest_age_seconds=0,
        )
    )
    memory = exposed(
        contract_registry(attune_memory_ready=1, attune_memory_encryption_key_available=1)
    )
    assert executor_problems(executor_figures(executor)) == []
    assert memory_problems(memory_figures(memory)) == []


def test_an_open_breaker_an_old_outbox_and_a_missing_key_are_problems() -> None:
    executor = executor_figures(
        exposed(
            contract_registry(
                attune_executor_breaker_state=2,
                attune_executor_memory_reachable=0,
                attune_executor_outbox_depth=3,
                attune_executor_outbox_oldest_age_seconds=900,
            )
        )
    )
    assert executor.breaker == "open"
    assert executor_problems(executor) == [
        "circuit breaker to memory open",
        "memory unreachable from the executor",
        "outbox: 3 patterns waiting, the oldest for 900 s",
    ]
    memory = memory_figures(
        exposed(contract_registry(attune_memory_ready=0, attune_memory_encryption_key_available=0))
    )
    assert memory_problems(memory) == [
        "memory not ready (its store does not answer)",
        "memory has no encryption key: SENSITIVE patterns are refused",
    ]


def test_figures_a_service_does_not_export_are_unknown_not_healthy() -> None:
    figures = executor_figures(exposed(CollectorRegistry()))
    assert figures.breaker is None
    assert figures.memory_reachable is None
    assert figures.runs_by_status == {}
    assert executor_problems(figures) == []


@pytest.mark.parametrize(
    ("given_url", "expected"),
    [
        ("127.0.0.1:50071", "http://127.0.0.1:50071/metrics"),
        ("http://pod:9000", "http://pod:9000/metrics"),
        ("http://pod:9000/", "http://pod:9000/metrics"),
        ("https://pod:9000/custom", "https://pod:9000/custom"),
    ],
)
def test_metrics_url_fills_in_scheme_and_path(given_url: str, expected: str) -> None:
    assert metrics_url(given_url) == expected


@pytest.mark.parametrize("bad", ["ftp://pod/metrics", "http://", "://x"])
def test_metrics_url_refuses_what_is_not_http(bad: str) -> None:
    with pytest.raises(ScrapeError):
        metrics_url(bad)


@given(st.text(max_size=200))
def test_parsing_any_text_fails_only_with_value_error(text: str) -> None:
    # Anything else (IndexError, KeyError from the parser) would be a traceback.
    with contextlib.suppress(ValueError):
        parse_exposition(text)
