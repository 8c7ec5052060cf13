"""Settings both servers share; each service adds its own under its prefix."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings

from memory_service.servicekit.tls import (
    LOOPBACK_HOSTS,
    ReloadingServerCertificates,
    ServerTlsFiles,
    TlsConfigError,
    check_both_or_neither,
)

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
    # Transport security. Plaintext on a loopback host is the development
    # default; anywhere else it must be chosen explicitly, as turning
    # authentication off must be.
    tls_cert_file: Path | None = Field(
        default=None,
        description=(
            "PEM certificate chain the server presents; with the key file, the port serves TLS. "
            "Re-read when the file changes (no restart)."
        ),
    )
    tls_key_file: Path | None = Field(
        default=None, description="PEM private key of the certificate (unencrypted)."
    )
    tls_client_ca_file: Path | None = Field(
        default=None,
        description=(
            "PEM bundle of the CAs that sign client certificates: when set, every client must "
            "present a certificate they signed (mutual TLS). Needs the certificate and key."
        ),
    )
    plaintext_allowed: bool = Field(
        default=False,
        description=(
            "Serve plaintext on a host other than a loopback address. Without TLS files the "
            "service refuses to start on such a host unless this is true."
        ),
    )
    health_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description=(
            "If set, a plaintext port serving only the health service (for probes that "
            "cannot speak TLS), on the health host; 0 picks a free one."
        ),
    )
    health_host: str = Field(
        default="127.0.0.1",
        description=(
            "Interface of the health port. Loopback keeps it inside the pod (exec probes); "
            "kubelet's own gRPC probe dials the pod IP, so it needs 0.0.0.0."
        ),
    )

    # Prometheus metrics: plain HTTP, apart from the gRPC port. They carry no
    # ids, tokens or text, so they need no TLS; keep the port off the public
    # edge (scrapers reach the pod directly).
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description=(
            "If set, Prometheus metrics are served over HTTP (any path, e.g. /metrics) on "
            "this port; 0 picks a free one. Unset: no metrics endpoint."
        ),
    )
    metrics_host: str | None = Field(
        default=None,
        description="Interface of the metrics port; unset: the service's own host.",
    )
    metrics_port_file: Path | None = Field(
        default=None,
        description=(
            "If set (with the metrics port), the bound metrics port is written here once "
            "metrics are served, before the port file."
        ),
    )

    def _setting(self, name: str) -> str:
        return f"{self.model_config.get('env_prefix', '')}{name}".upper()

    @property
    def tls_files(self) -> ServerTlsFiles | None:
        """The TLS files to serve with; None for plaintext."""
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        prefix = str(self.model_config.get("env_prefix", "")).upper()
        ca = self.tls_client_ca_file
        return ServerTlsFiles(self.tls_cert_file, self.tls_key_file, ca, prefix)

    @model_validator(mode="after")
    def _check_transport(self) -> ServerSettings:
        # Checked (and the files read) here, at start: a half-configured TLS
        # must stop the service, never fall back to plaintext.
        cert, key, ca = (self._setting(f"TLS_{n}_FILE") for n in ("CERT", "KEY", "CLIENT_CA"))
        try:
            check_both_or_neither(self.tls_cert_file, self.tls_key_file, cert, key)
            if self.tls_client_ca_file is not None and self.tls_cert_file is None:
                raise TlsConfigError(f"{ca} needs {cert} and {key}: mutual TLS is TLS first")
            if (files := self.tls_files) is not None:
                ReloadingServerCertificates(files)  # Reads and checks every file once.
        except TlsConfigError as error:
            raise ValueError(str(error)) from None
        plaintext = self.tls_cert_file is None
        if plaintext and self.host not in LOOPBACK_HOSTS and not self.plaintext_allowed:
            raise ValueError(
                f"{self._setting('HOST')}={self.host} would serve plaintext beyond this "
                f"machine: set {cert} and {key} (TLS), or "
                f"{self._setting('PLAINTEXT_ALLOWED')}=true to choose plaintext"
            )
        return self


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def settings_or_exit(settings_class: type[SettingsT], prefix: str) -> SettingsT:
    """The settings from the environment; on a bad one, one line per problem on
    stderr (`cannot start: PREFIX_NAME: why`, never the value) and exit code 2,
    as for any other configuration that cannot make a safe service."""
    try:
        return settings_class()
    except ValidationError as error:
        for problem in error.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in problem["loc"])
            name = f"{prefix}{where.upper()}" if where else prefix.rstrip("_") + " settings"
            message = str(problem["msg"]).removeprefix("Value error, ")
            print(f"cannot start: {name}: {message}", file=sys.stderr)
        raise SystemExit(2) from None
