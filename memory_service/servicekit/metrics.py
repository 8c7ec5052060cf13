"""Prometheus metrics of a service: its registry, the gRPC server metrics,
and the HTTP endpoint that serves them.

Each service keeps one registry (`ServiceMetrics`), holding the standard
gRPC server families, the process collectors, and the service's own domain
families (executor_service/metrics.py, memory_service/metrics.py). The
server interceptor (interceptors.py) records every call through a
`MethodMetrics`, built once per method, so a call only increments cached
label children: no label lookup, no allocation on the hot path.

The endpoint is plain HTTP (prometheus_client's WSGI server on a daemon
thread), on `<PREFIX>_METRICS_PORT` when set, none otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# `<name>_created` series double every counter and histogram; nothing here
# reads them (rate() and increase() cope with resets), so none are exposed.
disable_created_metrics()  # type: ignore[no-untyped-call]  # (no annotations upstream)

# Latency buckets of gRPC calls, in seconds: sub-millisecond reads up to
# streamed runs of several minutes.
RPC_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)

# grpc_type label values, as go-grpc-prometheus names them.
UNARY = "unary"
SERVER_STREAM = "server_stream"
CLIENT_STREAM = "client_stream"
BIDI_STREAM = "bidi_stream"

# Every status code by name, so the handled children are made at most once each.
_CODE_NAMES = {code: code.name for code in grpc.StatusCode}


def latency_buckets(up_to: float) -> tuple[float, ...]:
    """RPC_BUCKETS up to `up_to` seconds: latency histograms of parts of calls."""
    return tuple(bound for bound in RPC_BUCKETS if bound <= up_to)


def split_method(full_method: str) -> tuple[str, str]:
    """(service, method) of `/package.Service/Method`; ("", the rest) otherwise."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


class MethodMetrics:
    """The label children of one RPC method: a call increments these only."""

    __slots__ = ("_handled", "_handled_children", "_handling", "_in_flight", "_labels", "_started")

    def __init__(self, metrics: GrpcServerMetrics, full_method: str, grpc_type: str) -> None:
        service, method = split_method(full_method)
        self._labels = (service, method, grpc_type)
        self._started = metrics.started.labels(service, method, grpc_type)
        self._handling = metrics.handling.labels(service, method, grpc_type)
        self._in_flight = metrics.in_flight.labels(service, method)
        self._handled = metrics.handled
        self._handled_children: dict[grpc.StatusCode, Counter] = {}

    def begin(self) -> None:
        """A call of the method started."""
        self._started.inc()
        self._in_flight.inc()

    def end(self, code: grpc.StatusCode, seconds: float) -> None:
        """The call ended with `code` after `seconds`."""
        self._in_flight.dec()
        child = self._handled_children.get(code)
        if child is None:
            # At most one per status code: the label set stays bounded.
            child = self._handled.labels(*self._labels, _CODE_NAMES.get(code, "UNKNOWN"))
            self._handled_children[code] = child
        child.inc()
        self._handling.observe(seconds)


class GrpcServerMetrics:
    """The standard gRPC server families (go-grpc-prometheus names) on a registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_server_started",
            "RPCs started on the server, by method.",
            ["grpc_service", "grpc_method", "grpc_type"],
            registry=registry,
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
            registry=registry,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its status (a whole stream for streaming RPCs).",
            ["grpc_service", "grpc_method", "grpc_type"],
            buckets=RPC_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "grpc_server_in_flight_requests",
            "RPCs started and not yet finished, by method.",
            ["grpc_service", "grpc_method"],
            registry=registry,
        )
        # Keyed by the full method name the server routed: only methods with
        # a registered handler get here, so the set is the services' methods.
        self._methods: dict[tuple[str, str], MethodMetrics] = {}
        self._lock = threading.Lock()

    def method(self, full_method: str, grpc_type: str) -> MethodMetrics:
        """The cached label children of a method."""
        key = (full_method, grpc_type)
        found = self._methods.get(key)
        if found is None:
            with self._lock:
                found = self._methods.get(key)
                if found is None:
                    found = self._methods[key] = MethodMetrics(self, full_method, grpc_type)
        return found


class ServiceMetrics:
    """One service's registry: process collectors, gRPC server metrics, and
    whatever domain families the service registers on `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.grpc = GrpcServerMetrics(self.registry)

    def families(self) -> dict[str, str]:
        """Exposed family name -> type, as a scrape lists them (a counter `x`
        as `x_total`), children or not; see `exposed_families`."""
        return exposed_families(self.registry)

    def sample_names(self) -> frozenset[str]:
        """Every series name a query may use (histograms' _bucket, _sum, _count)."""
        return exposed_sample_names(self.registry)


def exposed_families(registry: CollectorRegistry) -> dict[str, str]:
    """Family name as the text format prints it -> type, for every family the
    registry describes (labelled families without children included)."""
    found: dict[str, str] = {}
    for family in registry.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        found[name] = family.type
    return found


_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}


def exposed_sample_names(registry: CollectorRegistry) -> frozenset[str]:
    """The series names a scrape of the registry can carry."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return frozenset(names)


def http_host(host: str) -> str:
    """A gRPC bind host as an HTTP server binds it: `[::]` is `::`."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


class MetricsEndpoint:
    """The registry served over HTTP on a daemon thread, until stopped."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self, host: str, port: int) -> int:
        """Binds (0: a free port), serves, and returns the bound port."""
        server, thread = start_http_server(port, http_host(host), self._registry)
        self._server, self._thread = server, thread
        self.port = int(server.server_port)
        return self.port

    def stop(self) -> None:
        """Stops serving and closes the socket (blocks for up to half a second:
        the server's poll interval); nothing once stopped."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()


def children(metric: Counter, values: Iterable[str]) -> dict[str, Counter]:
    """A single-label counter's children for known values, made up front, so
    the hot path indexes a dict and every value scrapes (0) from the start."""
    return {value: metric.labels(value) for value in values}
