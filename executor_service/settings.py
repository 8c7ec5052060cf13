"""Executor settings, from EXECUTOR_* environment variables."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from executor_service.runs.policy import (
    DEFAULT_RUNNERS,
    DEFAULT_STRATEGIES,
    RUNNER_CHOICES,
    STRATEGY_CHOICES,
    checked_allowances,
)
from memory_service.access.settings import AccessSettings
from memory_service.patterns import NAMESPACE_PATTERN
from memory_service.security.identity import bearer_token
from memory_service.servicekit.errors import ServiceError
from memory_service.servicekit.secret_settings import resolve_secret
from memory_service.servicekit.settings import ServerSettings
from memory_service.servicekit.tls import ClientTls, TlsConfigError, client_tls_from_files


class ExecutorSettings(ServerSettings, AccessSettings):
    """Everything the executor reads from its environment."""

    # Some settings are secrets (API keys, the memory token): a configuration
    # error must name the setting and the problem, never echo the value.
    model_config = SettingsConfigDict(
        env_prefix="EXECUTOR_", extra="ignore", hide_input_in_errors=True
    )

    port: int = Field(default=50051, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    data_dir: Path = Field(
        default=Path(".attune-data/executor"),
        description="Holds runs/: one directory per run, with its queued pattern until stored.",
    )
    runs_dir: Path | None = Field(
        default=None,
        description=(
            "The runs root; unset: <EXECUTOR_DATA_DIR>/runs. Replicas may share one "
            "(a ReadWriteMany volume): each answers for every run, resumes only its own "
            "journals, and one at a time replays the outbox."
        ),
    )
    replica_id: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$|^$",
        description=(
            "This replica's name in a shared runs directory (its journals and staging "
            "files carry it); unset: the host name (in Kubernetes the pod name, stable "
            "in a StatefulSet)."
        ),
    )
    memory_address: str = Field(
        default="127.0.0.1:50052",
        description="The memory service's gRPC target, e.g. host:port or dns:///host:port.",
    )
    memory_namespace: str = Field(
        default="default", description="The memory namespace the executor's patterns live in."
    )
    memory_token: SecretStr | None = Field(
        default=None,
        description=(
            "The executor's own bearer token for the memory service, sent as "
            "`authorization: Bearer` on stores, outbox replays, probes and searches whose caller "
            "sent no token of its own. Unset sends none (fine only while the memory service's "
            "authentication is off). Never logged."
        ),
    )
    memory_token_file: Path | None = Field(
        default=None,
        description=(
            "A file holding the memory token (e.g. a mounted secret), read at start with "
            "surrounding whitespace stripped. Set this or `EXECUTOR_MEMORY_TOKEN`, not both."
        ),
    )
    memory_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Deadline of each call to the memory service (capped by the caller's own).",
    )
    memory_store_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Deadline of a StorePattern call (runs and outbox replays); unset: "
            "`EXECUTOR_MEMORY_TIMEOUT_SECONDS`."
        ),
    )
    memory_search_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Deadline of a SearchPatterns call (SearchRuns); unset: "
            "`EXECUTOR_MEMORY_TIMEOUT_SECONDS`. Capped by the caller's own deadline."
        ),
    )
    breaker_failure_threshold: int = Field(
        default=5,
        ge=1,
        description=(
            "Consecutive failed memory calls (UNAVAILABLE or deadline exceeded) that open the "
            "circuit breaker; while open, memory calls fail fast without touching the network."
        ),
    )
    breaker_reset_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "How long the circuit breaker stays open before one probe call is let through; "
            "its success closes the breaker, its failure opens it again."
        ),
    )
    # RunWorkflow streams last as long as their run, minutes with a model API:
    # a connection past its maximum age must not cut them off.
    max_connection_age_grace_seconds: float | None = Field(
        default=None,
        gt=0,
        description=(
            "How long RPCs in flight on a connection past its maximum age may still run before "
            "the connection is closed; unset: as long as they take (a RunWorkflow stream lasts "
            "as long as its run)."
        ),
    )
    outbox_replay_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often queued patterns are offered to the memory service.",
    )
    outbox_replay_max_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Longest wait between replays while the memory service keeps failing: the wait "
            "doubles from `EXECUTOR_OUTBOX_REPLAY_INTERVAL_SECONDS` (with jitter) up to this."
        ),
    )
    runner: Literal["auto", "simulated", "anthropic", "openai"] = Field(
        default="auto",
        description=(
            "Default runner when a request names none. `auto`: anthropic if its API key is set, "
            "else openai if its key is set, else simulated."
        ),
    )
    allowed_runners: dict[str, list[str]] = Field(
        default=DEFAULT_RUNNERS,
        description=(
            "Runners each role may run with (JSON object: role to a list of simulated, "
            'anthropic, openai, or "*" for all); roles not named keep their default. A run '
            "naming no runner uses EXECUTOR_RUNNER, resolved, which must be allowed too. "
            "Anything else is PERMISSION_DENIED."
        ),
    )
    allowed_tier_strategies: dict[str, list[str]] = Field(
        default=DEFAULT_STRATEGIES,
        description=(
            "Tier strategies each role may ask a run for (JSON object: role to a list of "
            f'{", ".join(STRATEGY_CHOICES)}, or "*" for all); roles not named keep their '
            "default. A run naming none keeps its template's strategies, always allowed."
        ),
    )
    max_spend_per_hour_per_caller_usd: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Model spend (the attempts' cost_usd, simulated runs' too) one caller may accrue "
            "in a sliding hour; once at or over it, new runs are RESOURCE_EXHAUSTED until "
            "enough ages out. Runs already admitted finish. 0: no limit."
        ),
    )
    simulated_latency_ms: float = Field(
        default=0.0, ge=0, description="Latency of each simulated attempt, in milliseconds."
    )
    simulated_success: dict[str, float] = Field(
        default={"cheap": 0.75, "capable": 0.9, "premium": 0.98},
        description="Simulated chance that an attempt succeeds, per tier (JSON object).",
    )
    simulated_input_tokens: tuple[int, int] = Field(
        default=(1200, 4000), description="Range of simulated input tokens per attempt (JSON list)."
    )
    simulated_output_tokens: tuple[int, int] = Field(
        default=(200, 1200), description="Range of simulated output tokens per attempt (JSON list)."
    )
    simulated_role_success: dict[str, dict[str, float]] = Field(
        default={},
        description=(
            "Per-role overrides of `EXECUTOR_SIMULATED_SUCCESS`: role to tier to chance, e.g. "
            '{"security_auditor": {"cheap": 0.3}} (JSON object); tiers not named keep the '
            "per-tier chance."
        ),
    )
    drain_deadline_seconds: float = Field(
        default=300.0,
        ge=0,
        description=(
            "After SIGTERM, how long runs in flight may go on (no new run starts) before "
            "the executor suspends them and exits; a suspended run is resumed from its "
            "checkpoint when the executor starts again, never cancelled."
        ),
    )
    max_concurrent_agents: int = Field(
        default=4, ge=1, description="How many agents of one run may execute at once."
    )
    max_runs_in_flight: int = Field(
        default=64,
        ge=0,
        description=(
            "Most runs in flight at once, from every caller together; more are refused with "
            "RESOURCE_EXHAUSTED. 0: no limit."
        ),
    )
    max_runs_in_flight_per_caller: int = Field(
        default=16,
        ge=0,
        description="Most runs one caller may have in flight at once. 0: no limit.",
    )
    runs_per_minute_per_caller: int = Field(
        default=600,
        ge=0,
        description=(
            "Runs one caller may start per minute (a token bucket: a minute's worth at once, "
            "then at the steady rate). 0: no limit."
        ),
    )
    runs_per_minute: int = Field(
        default=1200,
        ge=0,
        description="Runs all callers together may start per minute (token bucket). 0: no limit.",
    )
    min_free_disk_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="Free disk under the data directory below which runs are refused. 0: none.",
    )
    templates_dir: Path | None = Field(
        default=None,
        description="Extra templates (*.yaml, *.yml, *.json) served beside the built-in ones.",
    )
    recommendation_target_success: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description=(
            "Success rate a tier must show (the 95% Wilson lower bound of a role's attempts at "
            "it) to be recommended for the role, and used by the learned tier strategy."
        ),
    )
    recommendation_min_runs: int = Field(
        default=10,
        ge=1,
        description=(
            "Fewest attempts of a role at a tier (and fewest successful runs answering a "
            "question) before the learner judges it; with fewer it says there is too little data."
        ),
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, description="Anthropic API key. Never logged or written to run files."
    )
    anthropic_api_key_file: Path | None = Field(
        default=None,
        description=(
            "File holding the Anthropic API key (e.g. a mounted secret), read at start with "
            "surrounding whitespace stripped. Set this or `EXECUTOR_ANTHROPIC_API_KEY`, not both."
        ),
    )
    anthropic_base_url: str = Field(
        default="https://api.anthropic.com", description="Base URL of the Anthropic Messages API."
    )
    anthropic_models: dict[str, str] = Field(
        default={
            "cheap": "claude-haiku-4-5",
            "capable": "claude-sonnet-4-5",
            "premium": "claude-opus-4-1",
        },
        description="Anthropic model per tier (JSON object).",
    )
    openai_api_key: SecretStr | None = Field(
        default=None, description="OpenAI-compatible API key. Never logged or written to run files."
    )
    openai_api_key_file: Path | None = Field(
        default=None,
        description=(
            "File holding the OpenAI-compatible API key, read at start with surrounding "
            "whitespace stripped. Set this or `EXECUTOR_OPENAI_API_KEY`, not both."
        ),
    )
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        description="Base URL of any OpenAI-compatible Chat Completions API.",
    )
    openai_models: dict[str, str] = Field(
        default={"cheap": "gpt-5-mini", "capable": "gpt-5", "premium": "o3"},
        description="OpenAI-compatible model per tier (JSON object).",
    )
    price_table: Path | None = Field(
        default=None,
        description=(
            "JSON price table (USD per million input/output tokens, per model); "
            "default: the table shipped in executor_service/runners/prices.json."
        ),
    )
    llm_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Timeout of one model API call."
    )
    llm_max_retries: int = Field(
        default=3, ge=0, description="Retries of a model API call on 429 and 5xx answers."
    )

    # The token in effect, from the variable or the file; see memory_bearer_token.
    memory_tls_ca_file: Path | None = Field(
        default=None,
        description=(
            "PEM bundle of the CAs that sign the memory service's certificate: when set (or a "
            "client certificate is), the executor reaches memory over TLS and verifies its name."
        ),
    )
    memory_tls_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate the executor presents to the memory service (mutual TLS).",
    )
    memory_tls_key_file: Path | None = Field(
        default=None, description="PEM private key of `EXECUTOR_MEMORY_TLS_CERT_FILE`."
    )
    memory_tls_server_name: str | None = Field(
        default=None,
        description=(
            "The name the memory service's certificate must carry, when it differs from the "
            "host in `EXECUTOR_MEMORY_ADDRESS` (e.g. an IP address or a load balancer)."
        ),
    )

    _memory_bearer: SecretStr | None = PrivateAttr(default=None)
    _memory_tls: ClientTls | None = PrivateAttr(default=None)
    _api_keys: dict[str, SecretStr | None] = PrivateAttr(default_factory=dict)

    @property
    def runs_root(self) -> Path:
        """Where runs are kept: EXECUTOR_RUNS_DIR, or runs/ in the data dir."""
        return self.runs_dir if self.runs_dir is not None else self.data_dir / "runs"

    @property
    def replica(self) -> str:
        """This replica's name: EXECUTOR_REPLICA_ID, or the host name made file-safe."""
        if self.replica_id:
            return self.replica_id
        return re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:128] or "replica"

    @property
    def memory_tls(self) -> ClientTls | None:
        """The TLS of the channel to the memory service; None for plaintext."""
        return self._memory_tls

    @model_validator(mode="after")
    def _resolve_memory_tls(self) -> ExecutorSettings:
        # Read at start, as the token is: a missing file stops the executor
        # instead of every store failing later.
        files = (self.memory_tls_ca_file, self.memory_tls_cert_file, self.memory_tls_key_file)
        if all(path is None for path in files):
            return self
        try:
            self._memory_tls = client_tls_from_files(
                self.memory_tls_ca_file,
                self.memory_tls_cert_file,
                self.memory_tls_key_file,
                self.memory_tls_server_name,
                (
                    "EXECUTOR_MEMORY_TLS_CA_FILE",
                    "EXECUTOR_MEMORY_TLS_CERT_FILE",
                    "EXECUTOR_MEMORY_TLS_KEY_FILE",
                ),
            )
        except TlsConfigError as error:
            raise ValueError(str(error)) from None
        return self

    @property
    def memory_bearer_token(self) -> SecretStr | None:
        """The executor's token for the memory service, wherever it was configured."""
        return self._memory_bearer

    @field_validator("memory_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        # The memory service's own rule: a bad namespace would reject every pattern.
        if not NAMESPACE_PATTERN.fullmatch(value):
            raise ValueError("must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-'")
        return value

    @field_validator("memory_token")
    @classmethod
    def _usable_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        return SecretStr(_checked_token(value.get_secret_value(), "EXECUTOR_MEMORY_TOKEN"))

    @model_validator(mode="after")
    def _resolve_memory_token(self) -> ExecutorSettings:
        # Read here, at start, so a missing or unreadable secret stops the
        # executor at once instead of surfacing later as queued patterns.
        token = resolve_secret(
            self.memory_token,
            self.memory_token_file,
            "EXECUTOR_MEMORY_TOKEN",
            "token the executor uses",
        )
        if token is not None and self.memory_token_file is not None:
            source = f"EXECUTOR_MEMORY_TOKEN_FILE ({self.memory_token_file})"
            token = SecretStr(_checked_token(token.get_secret_value(), source))
        self._memory_bearer = token
        return self

    @field_validator("anthropic_api_key", "openai_api_key")
    @classmethod
    def _empty_key_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty variable (e.g. `KEY=${KEY:-}` in a compose file) configures nothing.
        return value if value is not None and value.get_secret_value() else None

    @model_validator(mode="after")
    def _resolve_api_keys(self) -> ExecutorSettings:
        # Read once, at start: a run never re-reads a key file.
        self._api_keys = {
            "anthropic": resolve_secret(
                self.anthropic_api_key, self.anthropic_api_key_file, "EXECUTOR_ANTHROPIC_API_KEY"
            ),
            "openai": resolve_secret(
                self.openai_api_key, self.openai_api_key_file, "EXECUTOR_OPENAI_API_KEY"
            ),
        }
        return self

    def api_key(self, provider: Literal["anthropic", "openai"]) -> SecretStr | None:
        """The model API key of the provider, from its variable or its file; None if unset."""
        return self._api_keys.get(provider)

    @field_validator("simulated_success", "anthropic_models", "openai_models")
    @classmethod
    def _one_entry_per_tier(cls, value: dict[str, object]) -> dict[str, object]:
        tiers = {"cheap", "capable", "premium"}
        if set(value) != tiers:
            raise ValueError(f"needs exactly the keys {sorted(tiers)}, got {sorted(value)}")
        return value

    @field_validator("simulated_success")
    @classmethod
    def _probabilities(cls, value: dict[str, float]) -> dict[str, float]:
        if not all(0.0 <= p <= 1.0 for p in value.values()):
            raise ValueError("probabilities must lie in [0, 1]")
        return value

    @field_validator("simulated_role_success")
    @classmethod
    def _role_probabilities(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        tiers = {"cheap", "capable", "premium"}
        for role, chances in value.items():
            if unknown := sorted(set(chances) - tiers):
                raise ValueError(f"role {role!r}: unknown tiers {unknown}; known: {sorted(tiers)}")
            if not all(0.0 <= p <= 1.0 for p in chances.values()):
                raise ValueError(f"role {role!r}: probabilities must lie in [0, 1]")
        return value

    @field_validator("allowed_runners")
    @classmethod
    def _allowed_runners(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return _allowances("EXECUTOR_ALLOWED_RUNNERS", value, RUNNER_CHOICES, DEFAULT_RUNNERS)

    @field_validator("allowed_tier_strategies")
    @classmethod
    def _allowed_strategies(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return _allowances(
            "EXECUTOR_ALLOWED_TIER_STRATEGIES", value, STRATEGY_CHOICES, DEFAULT_STRATEGIES
        )

    @field_validator("simulated_input_tokens", "simulated_output_tokens")
    @classmethod
    def _ordered_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= value[0] <= value[1]:
            raise ValueError("needs [low, high] with 0 <= low <= high")
        return value


def _allowances(
    setting: str,
    value: dict[str, list[str]],
    choices: tuple[str, ...],
    defaults: dict[str, list[str]],
) -> dict[str, list[str]]:
    try:
        return checked_allowances(value, choices, defaults)
    except ValueError as error:
        raise ValueError(f"{setting}: {error}") from None


def _checked_token(token: str, source: str) -> str:
    """The token without surrounding whitespace, if the memory service could accept it.

    The check is the memory service's own parser of the header, so a token
    that passes here is never refused for its form, only for its identity.
    Messages describe the problem only: they never contain the token.
    """
    token = token.strip()
    if not token:
        raise ValueError(f"{source} is empty")
    try:
        bearer_token((("authorization", f"Bearer {token}"),))
    except ServiceError as error:
        raise ValueError(f"{source} is not a usable bearer token: {error.message}") from None
    return token
