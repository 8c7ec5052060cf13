"""The memory service's Prometheus metrics: one registry for the process.

The families are module-level, so the code where an event happens counts it
(rpc/writes.py, rpc/search.py, store/redis/link.py and replica.py,
retention_sweep.py). Readiness and the encryption key are read when scraped
(`bind_state`, server.py).

Labels are bounded: classifications, rejection reasons, secret and PII kinds
are fixed sets of the code; search modes and backends are enums; Redis
operations are names written at each call site. No namespace, id or text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

import grpc
from google.rpc import error_details_pb2
from prometheus_client import Counter, Gauge, Histogram

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.security.pii import PII_KINDS
from memory_service.security.secrets import SECRET_KINDS
from memory_service.servicekit.errors import ServiceError
from memory_service.servicekit.metrics import ServiceMetrics, children, latency_buckets

SERVICE = ServiceMetrics()
REGISTRY = SERVICE.registry

# SearchPatterns: a cached keyword search takes a millisecond, a semantic one
# waits for the embeddings provider.
SEARCH_BUCKETS = latency_buckets(10.0)

CLASSIFICATIONS = ("PUBLIC", "INTERNAL", "SENSITIVE")
# Why a write was not stored: the pattern's own fault or the service's state.
REJECTION_REASONS = (
    "invalid",  # a field is malformed or missing
    "too_large",  # over MEMORY_MAX_PATTERN_BYTES, as sent or once scrubbed/embedded
    "secret",  # holds a secret (see attune_memory_secrets_refused_total)
    "unscrubbable",  # too much number-like text to check for personal data
    "conflict",  # another pattern under the id, and no replace
    "no_encryption_key",  # SENSITIVE, and no key to seal it with
    "batch_full",  # a batch item past what the response can carry
)
SEARCH_MODES = {
    memory_pb2.SEARCH_MODE_KEYWORD: "keyword",
    memory_pb2.SEARCH_MODE_SEMANTIC: "semantic",
    memory_pb2.SEARCH_MODE_HYBRID: "hybrid",
}
DEGRADED_REASONS = ("no_embeddings_provider", "embeddings_unavailable", "no_free_text")

READY = Gauge(
    "attune_memory_ready",
    "Readiness as the health service reports it: 1 SERVING, 0 NOT_SERVING.",
    registry=REGISTRY,
)
STORED = Counter(
    "attune_memory_patterns_stored",
    "Patterns written (new or replaced), by classification as stored.",
    ["classification"],
    registry=REGISTRY,
)
DEDUPED = Counter(
    "attune_memory_patterns_deduped",
    "Writes of a pattern already stored as it is: nothing written.",
    registry=REGISTRY,
)
REJECTED = Counter(
    "attune_memory_patterns_rejected",
    "Writes refused, by reason (invalid, too_large, secret, unscrubbable, conflict, "
    "no_encryption_key, batch_full).",
    ["reason"],
    registry=REGISTRY,
)
SECRETS_REFUSED = Counter(
    "attune_memory_secrets_refused",
    "Writes refused for holding a secret, by the detector's kind (once per kind a write holds).",
    ["kind"],
    registry=REGISTRY,
)
PII_SCRUBBED = Counter(
    "attune_memory_pii_scrubbed",
    "Personal data replaced in stored patterns' free text, by kind (one per replacement).",
    ["kind"],
    registry=REGISTRY,
)
SEARCH_SECONDS = Histogram(
    "attune_memory_search_seconds",
    "SearchPatterns answered, by effective mode and store backend.",
    ["mode", "source"],
    buckets=SEARCH_BUCKETS,
    registry=REGISTRY,
)
SEARCHES_DEGRADED = Counter(
    "attune_memory_searches_degraded",
    "Semantic or hybrid searches answered by keyword instead, by reason.",
    ["reason"],
    registry=REGISTRY,
)
REDIS_CALLS = Counter(
    "attune_memory_redis_calls",
    "Calls the Redis store made (a script or command, redis-py's retries inside), by operation.",
    ["operation"],
    registry=REGISTRY,
)
REDIS_ERRORS = Counter(
    "attune_memory_redis_errors",
    "Redis store calls that failed (unreachable or refused), by operation.",
    ["operation"],
    registry=REGISTRY,
)
RETENTION_PURGED = Counter(
    "attune_memory_retention_purged",
    "Expired patterns deleted for good by this replica's retention sweep, by classification.",
    ["classification"],
    registry=REGISTRY,
)
ENCRYPTION_KEY = Gauge(
    "attune_memory_encryption_key_available",
    "1 when an active key can seal SENSITIVE patterns, else 0 (they are refused).",
    registry=REGISTRY,
)
CACHE_LAG = Gauge(
    "attune_memory_cache_catch_up_lag_seconds",
    "Redis store: how far behind Redis this replica's search cache was at its last "
    "catch-up, the age of the oldest change it then applied (the most over namespaces); "
    "0 when in step, and always 0 on the embedded store (no cache).",
    registry=REGISTRY,
)

_STORED = children(STORED, CLASSIFICATIONS)
_REJECTED = children(REJECTED, REJECTION_REASONS)
children(SECRETS_REFUSED, SECRET_KINDS)
children(PII_SCRUBBED, PII_KINDS)
children(SEARCHES_DEGRADED, DEGRADED_REASONS)
children(RETENTION_PURGED, CLASSIFICATIONS)


def classification_name(value: common_pb2.Classification.ValueType) -> str:
    """PUBLIC, INTERNAL or SENSITIVE (the enum's name without its prefix)."""
    return common_pb2.Classification.Name(value).removeprefix("CLASSIFICATION_")


def pattern_written(
    classification: common_pb2.Classification.ValueType,
    deduped: bool,
    scrubbed: Mapping[str, int],
) -> None:
    """Counts a committed write, and the personal data scrubbed from it."""
    if deduped:
        DEDUPED.inc()
    else:
        name = classification_name(classification)
        (_STORED.get(name) or STORED.labels(name)).inc()
    for kind, count in scrubbed.items():
        if count:
            PII_SCRUBBED.labels(kind).inc(count)


def rejected(error: ServiceError, reason: str | None = None) -> ServiceError:
    """Counts a refused write and returns the error, to raise: the reason is
    given, or read from the error (its code and ErrorInfo); None for errors
    that say nothing about the pattern (unavailable, cancelled)."""
    reason = reason or rejection_reason(error)
    if reason is not None:
        write_refused(reason)
        if reason == "secret":
            for kind in secret_kinds(error):
                SECRETS_REFUSED.labels(kind).inc()
    return error


def write_refused(reason: str) -> None:
    """Counts a write refused for one of REJECTION_REASONS."""
    _REJECTED[reason].inc()


_REASON_BY_INFO = {"SECRET_DETECTED": "secret", "SCRUB_BUDGET_EXCEEDED": "unscrubbable"}
_REASON_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: "invalid",
    grpc.StatusCode.ALREADY_EXISTS: "conflict",
    grpc.StatusCode.FAILED_PRECONDITION: "no_encryption_key",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "batch_full",
}


def _infos(error: ServiceError) -> Iterable[error_details_pb2.ErrorInfo]:
    return (d for d in error.details if isinstance(d, error_details_pb2.ErrorInfo))


def rejection_reason(error: ServiceError) -> str | None:
    """The REJECTION_REASONS entry a write error stands for, if any."""
    for info in _infos(error):
        if info.reason in _REASON_BY_INFO:
            return _REASON_BY_INFO[info.reason]
    return _REASON_BY_CODE.get(error.code)


def secret_kinds(error: ServiceError) -> list[str]:
    """The secret kinds a SECRET_DETECTED error names (write_pipeline.secret_rejection)."""
    for info in _infos(error):
        if info.reason == "SECRET_DETECTED":
            return [kind for kind in info.metadata.get("kinds", "").split(",") if kind]
    return []


def search_answered(
    mode: memory_pb2.SearchMode.ValueType, backend: str, seconds: float, degraded: str | None
) -> None:
    """Observes a SearchPatterns answer; `degraded` is the fallback's reason."""
    SEARCH_SECONDS.labels(SEARCH_MODES.get(mode, "keyword"), backend).observe(seconds)
    if degraded is not None:
        SEARCHES_DEGRADED.labels(degraded).inc()


class RedisCalls:
    """The call and error children of one Redis operation."""

    __slots__ = ("calls", "errors")

    def __init__(self, operation: str) -> None:
        self.calls = REDIS_CALLS.labels(operation)
        self.errors = REDIS_ERRORS.labels(operation)


_REDIS: dict[str, RedisCalls] = {}
_REDIS_LOCK = threading.Lock()


def redis_operation(operation: str) -> RedisCalls:
    """The cached children of an operation (a fixed name at each call site)."""
    found = _REDIS.get(operation)
    if found is None:
        with _REDIS_LOCK:
            found = _REDIS.setdefault(operation, RedisCalls(operation))
    return found


def purged(classification: str, count: int) -> None:
    """Counts patterns the retention sweep deleted."""
    RETENTION_PURGED.labels(classification).inc(count)


class _CacheLag:
    """The last catch-up lag of each namespace; the gauge shows the largest."""

    def __init__(self) -> None:
        self._by_namespace: dict[str, float] = {}
        self._lock = threading.Lock()

    def caught_up(self, namespace: str, seconds: float) -> None:
        with self._lock:
            self._by_namespace[namespace] = max(0.0, seconds)

    def forget(self) -> None:
        with self._lock:
            self._by_namespace.clear()

    def seconds(self) -> float:
        with self._lock:
            return max(self._by_namespace.values(), default=0.0)


CACHE_CATCH_UP = _CacheLag()
CACHE_LAG.set_function(CACHE_CATCH_UP.seconds)


def bind_state(ready: Callable[[], bool], key_available: bool) -> Callable[[], None]:
    """Reads readiness at each scrape (any thread) and sets the key gauge;
    returns what unbinds them, at shutdown."""
    READY.set_function(lambda: 1.0 if ready() else 0.0)
    ENCRYPTION_KEY.set(1.0 if key_available else 0.0)

    def unbind() -> None:
        READY.set_function(lambda: 0.0)
        CACHE_CATCH_UP.forget()

    return unbind


def families() -> dict[str, str]:
    """Every family a scrape of the memory service lists (exposed name -> type)."""
    return SERVICE.families()
