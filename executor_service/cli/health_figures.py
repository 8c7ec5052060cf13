"""The pair's health from its metrics, for `attune status`.

Pure functions of one scrape per service: counters are totals since the
process started, so ratios and quantiles here are "since start", where the
alert rules (deploy/k8s/components/monitoring/prometheus-rules.yaml) look
at recent windows. Definitions follow those rules: a server error is a
non-OK code that is not the caller's doing, and a quantile is estimated
from histogram buckets as Prometheus's histogram_quantile does.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from executor_service.cli.scrape import Exposition, Sample

# Codes that are the caller's doing, left out of server errors. The alert
# AttuneHighErrorRatio excludes the same ones (a unit test holds them equal).
CLIENT_CODES = frozenset(
    {
        "OK",
        "CANCELLED",
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "RESOURCE_EXHAUSTED",
    }
)
# Thresholds of the alerts, applied to the figures since start (a unit test
# holds them equal to the rules').
SERVER_ERROR_RATIO_LIMIT = 0.05
EXECUTOR_SEARCH_P95_LIMIT_SECONDS = 2.0
MEMORY_SEARCH_P95_LIMIT_SECONDS = 1.0
OUTBOX_AGE_LIMIT_SECONDS = 600.0
# Standard health and reflection calls are counted but are not the service.
INFRASTRUCTURE_SERVICES = ("grpc.",)
BREAKER_STATES = {0: "closed", 1: "half-open", 2: "open"}


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile estimated from cumulative buckets (upper bound, count),
    as Prometheus's histogram_quantile: linear within the bucket holding the
    rank, the first bucket starting at 0, and the highest finite bound when
    the rank falls in +Inf. None without observations or without a +Inf bucket."""
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} is not within [0, 1]")
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]):
        return None
    # Cumulative counts never fall; a scrape mid-update could show one that
    # does, which Prometheus also evens out.
    counts, highest = [], 0.0
    for _, count in ordered:
        highest = max(highest, count)
        counts.append(highest)
    total = counts[-1]
    if total <= 0:
        return None
    if len(ordered) < 2:
        return None  # Only +Inf: no bound to estimate from.
    rank = q * total
    index = next(i for i, count in enumerate(counts) if count >= rank)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    upper = ordered[index][0]
    if index == 0 and upper <= 0:
        return upper
    lower = 0.0 if index == 0 else ordered[index - 1][0]
    below = 0.0 if index == 0 else counts[index - 1]
    inside = counts[index] - below
    if inside <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / inside


def _matches(sample: Sample, match: Mapping[str, str]) -> bool:
    return all(sample.labels.get(key) == value for key, value in match.items())


def bucket_counts(
    exposition: Exposition, histogram: str, match: Mapping[str, str] | None = None
) -> list[tuple[float, float]]:
    """A histogram's cumulative buckets summed over every series matching `match`."""
    summed: dict[float, float] = defaultdict(float)
    for sample in exposition.samples(f"{histogram}_bucket"):
        if _matches(sample, match or {}):
            summed[float(sample.labels["le"])] += sample.value
    return sorted(summed.items())


def quantile_by(
    exposition: Exposition, histogram: str, label: str, q: float = 0.95
) -> dict[str, float | None]:
    """The q-quantile per value of `label`, and over all of them under "all"."""
    values = sorted({s.labels.get(label, "") for s in exposition.samples(f"{histogram}_bucket")})
    found = {
        v: histogram_quantile(q, bucket_counts(exposition, histogram, {label: v})) for v in values
    }
    if values:
        found["all"] = histogram_quantile(q, bucket_counts(exposition, histogram))
    return found


def totals_by(exposition: Exposition, name: str, label: str) -> dict[str, float]:
    """A counter's samples summed per value of one label."""
    summed: dict[str, float] = defaultdict(float)
    for sample in exposition.samples(name):
        summed[sample.labels.get(label, "")] += sample.value
    return dict(sorted(summed.items()))


def gauge(exposition: Exposition, name: str) -> float | None:
    """A gauge without labels; None when the service does not export it."""
    values = [sample.value for sample in exposition.samples(name)]
    return values[0] if values else None


@dataclass(frozen=True)
class MethodCalls:
    """One method's finished calls since start, by kind of outcome."""

    service: str
    method: str
    total: float
    not_ok: float
    server_errors: float

    @property
    def not_ok_ratio(self) -> float | None:
        return self.not_ok / self.total if self.total else None

    @property
    def server_error_ratio(self) -> float | None:
        return self.server_errors / self.total if self.total else None


def method_calls(exposition: Exposition) -> list[MethodCalls]:
    """Per method of the service itself (health and reflection left out)."""
    counts: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for sample in exposition.samples("grpc_server_handled_total"):
        service = sample.labels.get("grpc_service", "")
        if service.startswith(INFRASTRUCTURE_SERVICES):
            continue
        code = sample.labels.get("grpc_code", "")
        entry = counts[(service, sample.labels.get("grpc_method", ""))]
        entry[0] += sample.value
        if code != "OK":
            entry[1] += sample.value
        if code not in CLIENT_CODES:
            entry[2] += sample.value
    return [
        MethodCalls(service, method, *entry) for (service, method), entry in sorted(counts.items())
    ]


def _flag(value: float | None) -> bool | None:
    return None if value is None else value >= 1


@dataclass(frozen=True)
class ExecutorFigures:
    """What the executor's metrics say about it and its view of memory."""

    breaker: str | None
    memory_reachable: bool | None
    outbox_depth: float | None
    outbox_oldest_age_seconds: float | None
    runs_by_status: dict[str, float]
    attempts_by_tier: dict[str, float]
    search_p95_seconds: dict[str, float | None]
    methods: list[MethodCalls] = field(default_factory=list)


@dataclass(frozen=True)
class MemoryFigures:
    """What a memory replica's metrics say about it."""

    ready: bool | None
    encryption_key_available: bool | None
    secrets_refused: dict[str, float]
    search_p95_seconds: dict[str, float | None]
    methods: list[MethodCalls] = field(default_factory=list)


def executor_figures(exposition: Exposition) -> ExecutorFigures:
    state = gauge(exposition, "attune_executor_breaker_state")
    return ExecutorFigures(
        breaker=None if state is None else BREAKER_STATES.get(int(state), f"unknown ({state:g})"),
        memory_reachable=_flag(gauge(exposition, "attune_executor_memory_reachable")),
        outbox_depth=gauge(exposition, "attune_executor_outbox_depth"),
        outbox_oldest_age_seconds=gauge(exposition, "attune_executor_outbox_oldest_age_seconds"),
        runs_by_status=totals_by(exposition, "attune_executor_runs_total", "status"),
        attempts_by_tier=totals_by(exposition, "attune_executor_agent_attempts_total", "tier"),
        search_p95_seconds=quantile_by(exposition, "attune_executor_search_seconds", "source"),
        methods=method_calls(exposition),
    )


def memory_figures(exposition: Exposition) -> MemoryFigures:
    return MemoryFigures(
        ready=_flag(gauge(exposition, "attune_memory_ready")),
        encryption_key_available=_flag(gauge(exposition, "attune_memory_encryption_key_available")),
        secrets_refused=totals_by(exposition, "attune_memory_secrets_refused_total", "kind"),
        search_p95_seconds=quantile_by(exposition, "attune_memory_search_seconds", "mode"),
        methods=method_calls(exposition),
    )


def _slow(p95: Mapping[str, float | None], limit: float, what: str) -> list[str]:
    return [
        f"{what} p95 since start {value:.3g} s > {limit:g} s ({key})"
        for key, value in p95.items()
        if key != "all" and value is not None and value > limit
    ]


def _erring(methods: Sequence[MethodCalls], who: str) -> list[str]:
    return [
        f"{who} {calls.method}: {ratio:.1%} of calls failed on the server side"
        for calls in methods
        if (ratio := calls.server_error_ratio) is not None and ratio > SERVER_ERROR_RATIO_LIMIT
    ]


def executor_problems(figures: ExecutorFigures) -> list[str]:
    """What the alert rules would point at, judged on the executor's figures now."""
    problems = []
    if figures.breaker not in (None, "closed"):
        problems.append(f"circuit breaker to memory {figures.breaker}")
    if figures.memory_reachable is False:
        problems.append("memory unreachable from the executor")
    age = figures.outbox_oldest_age_seconds
    if figures.outbox_depth and age is not None and age > OUTBOX_AGE_LIMIT_SECONDS:
        problems.append(
            f"outbox: {figures.outbox_depth:g} patterns waiting, the oldest for {age:.0f} s"
        )
    problems += _slow(figures.search_p95_seconds, EXECUTOR_SEARCH_P95_LIMIT_SECONDS, "SearchRuns")
    return problems + _erring(figures.methods, "executor")


def memory_problems(figures: MemoryFigures) -> list[str]:
    """The same for a memory replica."""
    problems = []
    if figures.ready is False:
        problems.append("memory not ready (its store does not answer)")
    if figures.encryption_key_available is False:
        problems.append("memory has no encryption key: SENSITIVE patterns are refused")
    problems += _slow(figures.search_p95_seconds, MEMORY_SEARCH_P95_LIMIT_SECONDS, "SearchPatterns")
    return problems + _erring(figures.methods, "memory")
