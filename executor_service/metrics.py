"""The executor's Prometheus metrics: one registry for the process.

The families are module-level, so the code where an event happens counts it
(runs/engine.py, rpc/running.py, memory/delivery.py, rpc/searching.py,
learning/history.py). State that already lives in an object (the outbox,
the breaker, reachability) is read when scraped, through `bind_state`
(server.py), so a gauge never drifts from what GetStatus reports.

Labels are bounded: template ids come from the loaded catalog, runners,
tiers, statuses, modes and sources are enums. No run id, user or error text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from attune.executor.v1 import executor_pb2
from executor_service.memory.breaker import State
from executor_service.templates.models import Tier
from memory_service.servicekit.metrics import ServiceMetrics, children, latency_buckets

SERVICE = ServiceMetrics()
REGISTRY = SERVICE.registry

# Cost of a finished run, in US dollars: a simulated run costs cents, a
# premium team of real models can cost dollars.
COST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0)
# SearchRuns: local answers in milliseconds, memory answers up to its deadline.
SEARCH_BUCKETS = latency_buckets(10.0)

RUN_STATUSES = {
    executor_pb2.RUN_STATUS_SUCCEEDED: "succeeded",
    executor_pb2.RUN_STATUS_FAILED: "failed",
    executor_pb2.RUN_STATUS_CANCELLED: "cancelled",
}
BREAKER_VALUES = {State.CLOSED: 0.0, State.HALF_OPEN: 1.0, State.OPEN: 2.0}
DELIVERY_OUTCOMES = ("stored", "deduped", "queued", "rejected", "replayed", "replay_deduped")
SEARCH_MODES = {
    executor_pb2.SEARCH_RUNS_MODE_AUTO: "auto",
    executor_pb2.SEARCH_RUNS_MODE_MEMORY: "memory",
    executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES: "local_files",
    executor_pb2.SEARCH_RUNS_MODE_HYBRID: "hybrid",
}
SEARCH_SOURCES = {
    executor_pb2.SEARCH_SOURCE_MEMORY: "memory",
    executor_pb2.SEARCH_SOURCE_LOCAL_FILES: "local_files",
    executor_pb2.SEARCH_SOURCE_HYBRID: "hybrid",
}

RUNS = Counter(
    "attune_executor_runs",
    "Runs finished by this executor (persisted), by template, final status and runner.",
    ["template_id", "status", "runner"],
    registry=REGISTRY,
)
ATTEMPTS = Counter(
    "attune_executor_agent_attempts",
    "Agent attempts made by this executor, by model tier and outcome.",
    ["tier", "outcome"],
    registry=REGISTRY,
)
RUN_COST = Histogram(
    "attune_executor_run_cost_usd",
    "Total cost in US dollars of each finished run, by template.",
    ["template_id"],
    buckets=COST_BUCKETS,
    registry=REGISTRY,
)
OUTBOX_DEPTH = Gauge(
    "attune_executor_outbox_depth",
    "Run patterns waiting in the outbox for the memory service.",
    registry=REGISTRY,
)
OUTBOX_OLDEST_AGE = Gauge(
    "attune_executor_outbox_oldest_age_seconds",
    "How long the oldest pattern in the outbox has waited; 0 when it is empty.",
    registry=REGISTRY,
)
BREAKER_STATE = Gauge(
    "attune_executor_breaker_state",
    "Circuit breaker in front of the memory service: 0 closed, 1 half-open, 2 open.",
    registry=REGISTRY,
)
MEMORY_REACHABLE = Gauge(
    "attune_executor_memory_reachable",
    "Whether the memory service answered the last call or readiness probe (0 before any).",
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "attune_executor_pattern_deliveries",
    "Pattern deliveries: a finished run's pattern stored, deduped, queued (memory did "
    "not take it) or rejected; replayed: taken from the outbox later; replay_deduped: "
    "taken from the outbox, memory already held it (a lost answer, or another replica's "
    "fresh offer).",
    ["outcome"],
    registry=REGISTRY,
)
SEARCH_SECONDS = Histogram(
    "attune_executor_search_seconds",
    "SearchRuns answered, by requested mode and the source that answered.",
    ["mode", "source"],
    buckets=SEARCH_BUCKETS,
    registry=REGISTRY,
)
SEARCHES_DEGRADED = Counter(
    "attune_executor_searches_degraded",
    "SearchRuns answered from a fallback because the memory service was unreachable.",
    ["source"],
    registry=REGISTRY,
)
HISTORY_LAG = Gauge(
    "attune_executor_history_catch_up_lag_seconds",
    "Age of the learning history's view of the runs directory: seconds since it last "
    "listed it (other replicas' runs appear then; this executor's own at once); 0 "
    "before it first loads.",
    registry=REGISTRY,
)
RUNS_IN_FLIGHT = Gauge(
    "attune_executor_runs_in_flight",
    "Runs this executor is running now.",
    registry=REGISTRY,
)

_ATTEMPTS = {
    (tier.value, success): ATTEMPTS.labels(tier.value, "succeeded" if success else "failed")
    for tier in Tier
    for success in (True, False)
}
_DELIVERIES = children(DELIVERIES, DELIVERY_OUTCOMES)
children(SEARCHES_DEGRADED, ["local_files"])  # The fallback: listed (0) from the start.


def attempt_made(tier: Tier, success: bool) -> None:
    """Counts one agent attempt."""
    _ATTEMPTS[tier.value, success].inc()


def run_finished(template_id: str, status: str, runner: str, cost_usd: float) -> None:
    """Counts a finished run and observes its cost."""
    RUNS.labels(template_id, status, runner).inc()
    RUN_COST.labels(template_id).observe(cost_usd)


def pattern_delivered(outcome: str) -> None:
    """Counts one pattern delivery outcome (one of DELIVERY_OUTCOMES)."""
    _DELIVERIES[outcome].inc()


def search_answered(mode: str, source: str, seconds: float, degraded: bool) -> None:
    """Observes a SearchRuns answer."""
    SEARCH_SECONDS.labels(mode, source).observe(seconds)
    if degraded:
        SEARCHES_DEGRADED.labels(source).inc()


class _ViewAge:
    """When the learning history last listed the runs (any thread reads it)."""

    def __init__(self) -> None:
        self._at: float | None = None
        self._lock = threading.Lock()

    def refreshed(self) -> None:
        with self._lock:
            self._at = time.monotonic()

    def seconds(self) -> float:
        with self._lock:
            at = self._at
        return 0.0 if at is None else time.monotonic() - at


HISTORY_VIEW = _ViewAge()
HISTORY_LAG.set_function(HISTORY_VIEW.seconds)


def bind_state(
    *,
    outbox_depth: Callable[[], int],
    outbox_oldest_age: Callable[[], float | None],
    breaker_state: Callable[[], State],
    memory_reachable: Callable[[], bool | None],
    runs_in_flight: Callable[[], int],
) -> Callable[[], None]:
    """Reads the gauges of the outbox, the breaker, reachability and the runs
    through these at each scrape (on the HTTP thread: each must be safe to
    call from any thread); returns what unbinds them, at shutdown."""
    OUTBOX_DEPTH.set_function(outbox_depth)
    OUTBOX_OLDEST_AGE.set_function(lambda: outbox_oldest_age() or 0.0)
    BREAKER_STATE.set_function(lambda: BREAKER_VALUES[breaker_state()])
    MEMORY_REACHABLE.set_function(lambda: 1.0 if memory_reachable() else 0.0)
    RUNS_IN_FLIGHT.set_function(runs_in_flight)

    def unbind() -> None:
        for gauge in (OUTBOX_DEPTH, OUTBOX_OLDEST_AGE, BREAKER_STATE, MEMORY_REACHABLE):
            gauge.set_function(_zero)
        RUNS_IN_FLIGHT.set_function(_zero)

    return unbind


def _zero() -> float:
    return 0.0


def families() -> dict[str, str]:
    """Every family a scrape of the executor lists (exposed name -> type)."""
    return SERVICE.families()
