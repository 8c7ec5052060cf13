"""Memory service settings, from MEMORY_* environment variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from memory_service.access.settings import AccessSettings
from memory_service.servicekit.secret_settings import resolve_secret
from memory_service.servicekit.settings import ServerSettings
from memory_service.sizes import DEFAULT_MAX_PATTERN_BYTES, MAX_PATTERN_BYTES_LIMIT


class MemorySettings(ServerSettings, AccessSettings):
    """Everything the memory service reads from its environment."""

    # A configuration error names the setting, never echoes the values
    # (MEMORY_ENCRYPTION_KEYS is one of them).
    model_config = SettingsConfigDict(
        env_prefix="MEMORY_", extra="ignore", hide_input_in_errors=True
    )

    port: int = Field(default=50052, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    data_dir: Path = Field(
        default=Path(".attune-data/memory"),
        description="Directory of the embedded store (patterns.sqlite3), or of the redis "
        "store's local search cache (redis-index.sqlite3).",
    )
    store: Literal["embedded", "redis"] = Field(
        default="embedded",
        description="Storage backend. `embedded` is a SQLite file in the data directory; "
        "`redis` keeps patterns in Redis (standalone or Cluster), shared by every replica.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Standalone Redis URL, `redis://[[user]:password@]host:port/db` "
        "(`rediss://` for TLS); unused when cluster nodes are set.",
    )
    redis_cluster_nodes: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Redis Cluster seed nodes, `host:port` separated by commas (or a JSON "
        "list); when set, "
        "the redis store runs in Cluster mode.",
    )
    redis_password: SecretStr | None = Field(
        default=None,
        description="Redis password (AUTH); for standalone Redis it overrides one in the URL.",
    )
    redis_password_file: Path | None = Field(
        default=None,
        description="A file holding the Redis password (e.g. a mounted Kubernetes secret), read "
        "at start with surrounding whitespace stripped. Set this or `MEMORY_REDIS_PASSWORD`, "
        "not both.",
    )
    redis_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Connect and read timeout of each Redis call.",
    )
    redis_retries: int = Field(
        default=2,
        ge=0,
        description="Retries of a Redis call after a connection error or timeout, with "
        "exponential backoff and jitter, before the RPC answers UNAVAILABLE.",
    )
    redis_key_prefix: str = Field(
        default="attune",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of every Redis key, so several deployments can share one Redis.",
    )
    context_default_ttl_seconds: float = Field(
        default=3600.0, gt=0, description="Time to live of a context entry set without one."
    )
    context_max_ttl_seconds: float = Field(
        default=86400.0, gt=0, description="Longest time to live a context entry may have."
    )
    audit_stream_max_entries: int = Field(
        default=1_000_000,
        gt=0,
        description="With the redis store, the audit log is the stream `<prefix>:audit`, shared "
        "by every replica; it is trimmed to about this many records (XADD MAXLEN ~).",
    )
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="AES-256 keys for SENSITIVE patterns, `id:base64key` pairs separated by "
        "commas. Never logged. Make one with "
        "`python -m memory_service.security.crypto generate-key`.",
    )
    encryption_key_file: Path | None = Field(
        default=None,
        description="A file of `id:base64key` lines (a mounted secret), read with "
        "`MEMORY_ENCRYPTION_KEYS`.",
    )
    encryption_active_key_id: str | None = Field(
        default=None,
        description="The key id new SENSITIVE patterns are sealed with; required when several "
        "keys are configured (key rotation). Re-seal old records with "
        "`attune-memory-admin reencrypt`.",
    )
    retention_public_days: float = Field(
        default=365.0, gt=0, description="How long a PUBLIC pattern is kept after it is stored."
    )
    retention_internal_days: float = Field(
        default=180.0, gt=0, description="How long an INTERNAL pattern is kept after it is stored."
    )
    retention_sensitive_days: float = Field(
        default=90.0, gt=0, description="How long a SENSITIVE pattern is kept after it is stored."
    )
    retention_sweep_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How often expired patterns are purged for good. Expired patterns are "
        "never returned, purged or not; pinned patterns never expire.",
    )
    max_pattern_bytes: int = Field(
        default=DEFAULT_MAX_PATTERN_BYTES,
        gt=0,
        le=MAX_PATTERN_BYTES_LIMIT,
        description="The largest pattern as stored (after scrubbing, with its embedding); a "
        "larger write is INVALID_ARGUMENT and nothing is stored. At most 3 MiB, so any pattern "
        "fits a response a default gRPC client accepts (4 MiB).",
    )
    templates_dir: Path | None = Field(
        default=None,
        description="Extra template files (*.yaml, *.yml, *.json) whose forms search "
        "understands beside the built-in templates' (question ids, labels, options); point it "
        "at the executor's `EXECUTOR_TEMPLATES_DIR` so both understand a query alike.",
    )
    embeddings_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible embeddings API; unset turns semantic "
        "and hybrid search off (they answer by keyword and say so).",
    )
    embeddings_model: str = Field(
        default="text-embedding-3-small", description="The embeddings model."
    )
    embeddings_api_key: SecretStr | None = Field(
        default=None, description="API key of the embeddings API. Never logged."
    )
    embeddings_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Bound on one embeddings call; past it, the store or search goes on without.",
    )

    @model_validator(mode="after")
    def _resolve_redis_password(self) -> MemorySettings:
        # Read at start: an unreadable secret stops the service, not its first Redis call.
        self.redis_password = resolve_secret(
            self.redis_password,
            self.redis_password_file,
            "MEMORY_REDIS_PASSWORD",
            "password is used",
        )
        return self

    @field_validator("redis_cluster_nodes", mode="before")
    @classmethod
    def _split_nodes(cls, value: object) -> object:
        if isinstance(value, str) and value.lstrip().startswith("["):
            value = json.loads(value)
        elif isinstance(value, str):
            value = [node.strip() for node in value.split(",") if node.strip()]
        if isinstance(value, list):
            for node in value:
                host, _, port = str(node).rpartition(":")
                if not host or not port.isdigit():
                    raise ValueError(f"cluster node {node!r} is not host:port")
        return value
