"""Settings both servers share; each service adds its own under its prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

LogLevel = Literal["debug", "info", "warning", "error"]


class ServerSettings(BaseSettings):
    """Where a server listens, how it logs, how it shuts down."""

    host: str = Field(
        default="127.0.0.1",
        description="Interface to bind; use 0.0.0.0 or [::] in containers.",
    )
    port: int = Field(default=0, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    port_file: Path | None = Field(
        default=None,
        description="If set, the bound port is written here once the server is serving.",
    )
    log_level: LogLevel = Field(default="info", description="Lowest level logged.")
    grace_period_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long in-flight RPCs may run after SIGTERM before they are cancelled.",
    )
    readiness_interval_seconds: float = Field(
        default=2.0, gt=0, description="How often dependencies are probed for readiness."
    )
    # Connection management, so clients notice dead peers and rebalance: a
    # connection older than the maximum age is closed (gracefully, GOAWAY),
    # and the client reconnects through its resolver and load balancer,
    # reaching replicas added since.
    keepalive_time_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often the server pings an idle client to check the connection is alive.",
    )
    keepalive_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a keepalive ping may go unanswered before the connection is closed.",
    )
    max_connection_age_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Connections older than this (plus or minus 10% jitter) are closed gracefully, so "
            "clients reconnect and spread over replicas added since."
        ),
    )
    max_connection_age_grace_seconds: float | None = Field(
        default=30.0,
        gt=0,
        description=(
            "How long RPCs in flight on a connection past its maximum age may still run before "
            "the connection is closed."
        ),
    )
