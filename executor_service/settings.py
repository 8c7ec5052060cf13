"""Executor settings, from EXECUTOR_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from memory_service.servicekit.settings import ServerSettings


class ExecutorSettings(ServerSettings):
    """Everything the executor reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="EXECUTOR_", extra="ignore")

    port: int = Field(default=50051, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    data_dir: Path = Field(
        default=Path(".attune-data/executor"),
        description="Holds runs/ (one directory per run) and outbox/ (patterns not yet stored).",
    )
    memory_address: str = Field(
        default="127.0.0.1:50052",
        description="The memory service's gRPC target, e.g. host:port or dns:///host:port.",
    )
    memory_namespace: str = Field(
        default="default", description="The memory namespace the executor's patterns live in."
    )
    memory_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Deadline of each call to the memory service (capped by the caller's own).",
    )
    outbox_replay_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often queued patterns are offered to the memory service.",
    )
    runner: Literal["simulated"] = Field(
        default="simulated",
        description="Default runner. `simulated` is deterministic and labelled as simulated.",
    )
    simulated_latency_ms: float = Field(
        default=0.0, ge=0, description="Latency of each simulated attempt, in milliseconds."
    )
    max_concurrent_agents: int = Field(
        default=4, ge=1, description="How many agents of one run may execute at once."
    )
