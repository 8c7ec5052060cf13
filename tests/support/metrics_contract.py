"""The metric names alerts, the dashboard and `attune status` rely on (issue 16).

Exposed names (a counter `x` is scraped as `x_total`), their type and their
labels. Tests hold both services to this list; the services may export more.
"""

from __future__ import annotations

GRPC_SERVER: dict[str, tuple[str, tuple[str, ...]]] = {
    "grpc_server_started_total": ("counter", ("grpc_service", "grpc_method", "grpc_type")),
    "grpc_server_handled_total": (
        "counter",
        ("grpc_service", "grpc_method", "grpc_type", "grpc_code"),
    ),
    "grpc_server_handling_seconds": ("histogram", ("grpc_service", "grpc_method", "grpc_type")),
    "grpc_server_in_flight_requests": ("gauge", ("grpc_service", "grpc_method")),
}

EXECUTOR: dict[str, tuple[str, tuple[str, ...]]] = {
    **GRPC_SERVER,
    "attune_executor_runs_total": ("counter", ("template_id", "status", "runner")),
    "attune_executor_agent_attempts_total": ("counter", ("tier", "outcome")),
    "attune_executor_run_cost_usd": ("histogram", ("template_id",)),
    "attune_executor_outbox_depth": ("gauge", ()),
    "attune_executor_outbox_oldest_age_seconds": ("gauge", ()),
    "attune_executor_breaker_state": ("gauge", ()),
    "attune_executor_memory_reachable": ("gauge", ()),
    "attune_executor_pattern_deliveries_total": ("counter", ("outcome",)),
    "attune_executor_search_seconds": ("histogram", ("mode", "source")),
    "attune_executor_searches_degraded_total": ("counter", ("source",)),
    "attune_executor_history_catch_up_lag_seconds": ("gauge", ()),
}

MEMORY: dict[str, tuple[str, tuple[str, ...]]] = {
    **GRPC_SERVER,
    "attune_memory_ready": ("gauge", ()),
    "attune_memory_patterns_stored_total": ("counter", ("classification",)),
    "attune_memory_patterns_deduped_total": ("counter", ()),
    "attune_memory_patterns_rejected_total": ("counter", ("reason",)),
    "attune_memory_secrets_refused_total": ("counter", ("kind",)),
    "attune_memory_pii_scrubbed_total": ("counter", ("kind",)),
    "attune_memory_search_seconds": ("histogram", ("mode", "source")),
    "attune_memory_searches_degraded_total": ("counter", ("reason",)),
    "attune_memory_redis_calls_total": ("counter", ("operation",)),
    "attune_memory_redis_errors_total": ("counter", ("operation",)),
    "attune_memory_retention_purged_total": ("counter", ("classification",)),
    "attune_memory_encryption_key_available": ("gauge", ()),
    "attune_memory_cache_catch_up_lag_seconds": ("gauge", ()),
}
