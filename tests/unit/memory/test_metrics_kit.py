"""The service kit's metrics helpers, and reading an exposition back."""

from __future__ import annotations

import math

import grpc
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from memory_service.servicekit.metrics import (
    RPC_BUCKETS,
    GrpcServerMetrics,
    ServiceMetrics,
    exposed_families,
    exposed_sample_names,
    http_host,
    latency_buckets,
    split_method,
)
from tests.support.scrape import parse

IDENTIFIER = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)


@given(st.lists(IDENTIFIER, min_size=1, max_size=4), IDENTIFIER)
def test_split_method_gives_the_service_and_the_method(parts: list[str], method: str) -> None:
    service = ".".join(parts)
    assert split_method(f"/{service}/{method}") == (service, method)


def test_split_method_of_a_name_without_a_service() -> None:
    assert split_method("Lonely") == ("", "Lonely")


def test_latency_buckets_stop_at_the_bound_and_keep_order() -> None:
    assert latency_buckets(10.0) == tuple(b for b in RPC_BUCKETS if b <= 10.0)
    assert latency_buckets(10.0)[-1] == 10.0
    assert list(RPC_BUCKETS) == sorted(RPC_BUCKETS)


def test_http_host_unbrackets_ipv6() -> None:
    assert http_host("[::]") == "::"
    assert http_host("[::1]") == "::1"
    assert http_host("127.0.0.1") == "127.0.0.1"


def test_exposed_names_list_families_without_children() -> None:
    registry = CollectorRegistry()
    Counter("jobs", "Jobs.", ["kind"], registry=registry)
    Histogram("wait_seconds", "Waits.", ["kind"], registry=registry)
    Gauge("depth", "Depth.", registry=registry)
    assert exposed_families(registry) == {
        "jobs_total": "counter",
        "wait_seconds": "histogram",
        "depth": "gauge",
    }
    assert exposed_sample_names(registry) == {
        "jobs_total",
        "wait_seconds_bucket",
        "wait_seconds_sum",
        "wait_seconds_count",
        "depth",
    }
    # What a scrape of it lists, parsed back as a scraper reads it.
    assert parse(generate_latest(registry).decode()).families == exposed_families(registry)


def test_a_service_registry_has_the_grpc_and_process_families() -> None:
    families = ServiceMetrics().families()
    for name in (
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds",
        "grpc_server_in_flight_requests",
        "process_cpu_seconds_total",
    ):
        assert name in families
    assert not any(name.endswith("_created") for name in families)


def test_method_metrics_count_a_call_by_code_and_cache_their_children() -> None:
    metrics = ServiceMetrics()
    grpc_metrics: GrpcServerMetrics = metrics.grpc
    method = grpc_metrics.method("/pkg.Svc/Do", "unary")
    assert grpc_metrics.method("/pkg.Svc/Do", "unary") is method
    method.begin()
    method.begin()
    scraped = parse(generate_latest(metrics.registry).decode())
    labels = {"grpc_service": "pkg.Svc", "grpc_method": "Do"}
    assert scraped.value("grpc_server_in_flight_requests", **labels) == 2
    method.end(grpc.StatusCode.OK, 0.002)
    method.end(grpc.StatusCode.NOT_FOUND, 0.5)
    scraped = parse(generate_latest(metrics.registry).decode())
    typed = {**labels, "grpc_type": "unary"}
    assert scraped.value("grpc_server_started_total", **typed) == 2
    assert scraped.value("grpc_server_handled_total", **typed, grpc_code="OK") == 1
    assert scraped.value("grpc_server_handled_total", **typed, grpc_code="NOT_FOUND") == 1
    assert scraped.value("grpc_server_in_flight_requests", **labels) == 0
    assert scraped.value("grpc_server_handling_seconds_count", **typed) == 2
    assert math.isclose(scraped.value("grpc_server_handling_seconds_sum", **typed), 0.502)
    assert scraped.value("grpc_server_handling_seconds_bucket", **typed, le="0.0025") == 1


# Label values a scrape must carry through: quotes, backslashes, newlines, any text.
LABEL_VALUE = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]) | st.sampled_from('"\\\n'), max_size=30
)


@given(
    st.dictionaries(LABEL_VALUE, st.integers(min_value=1, max_value=10**6), max_size=8),
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
)
def test_an_exposition_parses_back_to_the_values_it_holds(
    counts: dict[str, int], level: float
) -> None:
    registry = CollectorRegistry()
    counter = Counter("events", "Events.", ["what"], registry=registry)
    gauge = Gauge("level", "Level.", registry=registry)
    for value, count in counts.items():
        counter.labels(value).inc(count)
    gauge.set(level)
    scraped = parse(generate_latest(registry).decode())
    assert scraped.families == {"events_total": "counter", "level": "gauge"}
    assert {value: scraped.value("events_total", what=value) for value in counts} == counts
    assert scraped.label_values("events_total", "what") == set(counts)
    assert math.isclose(scraped.value("level"), level, rel_tol=1e-12, abs_tol=1e-12)


def test_a_missing_child_reads_zero_and_total_sums_over_labels() -> None:
    registry = CollectorRegistry()
    counter = Counter("hits", "Hits.", ["a", "b"], registry=registry)
    counter.labels("x", "1").inc(2)
    counter.labels("x", "2").inc(3)
    counter.labels("y", "1").inc(7)
    scraped = parse(generate_latest(registry).decode())
    assert scraped.value("hits_total", a="z", b="1") == 0
    assert scraped.total("hits_total", a="x") == 5
    assert scraped.total("hits_total") == 12
    assert scraped.label_values("hits_total", "a") == {"x", "y"}
