"""Serving a grpc.aio server: health, reflection, readiness, graceful stop.

Liveness is the health service "" (SERVING while the process runs); readiness
is the named service, SERVING only while the dependencies it needs answer.
SIGTERM or SIGINT flips everything to NOT_SERVING, stops accepting new RPCs,
lets in-flight RPCs finish within the grace period, and returns.

With a metrics port set, the service's Prometheus registry is served over
HTTP from before the port file is written until the server has drained.

Every RPC (health and reflection aside) gets a server span (tracing.py),
outermost, so the observability interceptor, and every log line, runs inside
it; spans still queued are flushed once the service has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from memory_service.servicekit.decoding import UndecodableHook
from memory_service.servicekit.interceptors import ObservabilityInterceptor
from memory_service.servicekit.metrics import MetricsEndpoint, ServiceMetrics
from memory_service.servicekit.private_files import private_dir, private_opener
from memory_service.servicekit.settings import ServerSettings
from memory_service.servicekit.tls import ReloadingServerCertificates
from memory_service.servicekit.tracing import flush as flush_spans
from memory_service.servicekit.tracing import server_interceptor

log = logging.getLogger("attune.server")

ReadinessProbe = Callable[[], Awaitable[bool]]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# Clients may ping this often on an idle connection; more often, and the
# server closes the connection (too_many_pings). The executor's memory channel
# pings every 30 s, well clear of it.
MIN_CLIENT_PING_INTERVAL_MS = 10_000

# Messages are capped at 8 MiB.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """The channel arguments of a server built from these settings.

    Keepalive lets both ends notice a dead peer behind a silent network.
    The maximum connection age closes every connection now and then (GOAWAY,
    in-flight RPCs finish within the grace), so clients reconnect through
    their resolver: with `dns:///` and round_robin, they re-resolve and
    spread over replicas added since, instead of staying pinned to the old.
    """
    options = [
        ("grpc.keepalive_time_ms", _ms(settings.keepalive_time_seconds)),
        ("grpc.keepalive_timeout_ms", _ms(settings.keepalive_timeout_seconds)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_CLIENT_PING_INTERVAL_MS),
        ("grpc.max_connection_age_ms", _ms(settings.max_connection_age_seconds)),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    # Unset: gRPC's own default, an unbounded grace.
    if settings.max_connection_age_grace_seconds is not None:
        grace = _ms(settings.max_connection_age_grace_seconds)
        options.append(("grpc.max_connection_age_grace_ms", grace))
    return options


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class ManagedServer:
    """A started server with its health servicer and readiness loop."""

    def __init__(
        self,
        settings: ServerSettings,
        service_name: str,
        register: Callable[[grpc.aio.Server], None],
        readiness: ReadinessProbe,
        on_undecodable: UndecodableHook | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.service_name = service_name
        self.health = HealthServicer()
        # The service's registry; a server given none counts into its own.
        self.metrics = metrics or ServiceMetrics()
        self.server = grpc.aio.server(
            interceptors=[
                server_interceptor(),
                ObservabilityInterceptor(on_undecodable, self.metrics.grpc),
            ],
            options=server_options(settings),
        )
        register(self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                service_name,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        self._readiness = readiness
        self._readiness_task: asyncio.Task[None] | None = None
        self._ready: bool | None = None
        self.port = 0
        files = settings.tls_files
        self.certificates = ReloadingServerCertificates(files) if files else None
        # Probes that cannot speak TLS (kubelet's gRPC probe) get a plaintext
        # port serving nothing but the same health servicer.
        self.health_server: grpc.aio.Server | None = None
        self.health_port = 0
        if settings.health_port is not None:
            self.health_server = grpc.aio.server(options=server_options(settings))
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.health_server)
        self.metrics_endpoint: MetricsEndpoint | None = None

    @property
    def ready(self) -> bool:
        """Readiness as last probed (False before the first probe)."""
        return bool(self._ready)

    @property
    def metrics_port(self) -> int:
        """The bound metrics port; 0 when metrics are not served."""
        return self.metrics_endpoint.port if self.metrics_endpoint is not None else 0

    async def _serve_metrics(self) -> None:
        """Starts the metrics endpoint if a port is set; its port goes to the
        log and the metrics port file."""
        settings = self.settings
        if settings.metrics_port is None:
            return
        host = settings.metrics_host or settings.host
        endpoint = MetricsEndpoint(self.metrics.registry)
        try:
            port = await asyncio.to_thread(endpoint.start, host, settings.metrics_port)
        except OSError as error:
            raise RuntimeError(
                f"could not bind metrics {host}:{settings.metrics_port}: {error}"
            ) from error
        self.metrics_endpoint = endpoint
        if settings.metrics_port_file is not None:
            _write_atomically(settings.metrics_port_file, f"{port}\n")
        log.info("serving metrics", extra={"metrics_host": host, "metrics_port": port})

    async def start(self) -> int:
        """Binds, starts serving, and returns the bound port."""
        address = f"{self.settings.host}:{self.settings.port}"
        if self.certificates is not None:
            self.port = self.server.add_secure_port(address, self.certificates.credentials())
        else:
            self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise RuntimeError(f"could not bind {address}")
        if self.health_server is not None:
            health_address = f"{self.settings.health_host}:{self.settings.health_port}"
            self.health_port = self.health_server.add_insecure_port(health_address)
            if self.health_port == 0:
                raise RuntimeError(f"could not bind {health_address}")
            await self.health_server.start()
        await self._serve_metrics()
        await self.server.start()
        await self._probe_once()
        self._readiness_task = asyncio.create_task(self._readiness_loop())
        if self.settings.port_file is not None:
            _write_atomically(self.settings.port_file, f"{self.port}\n")
        transport = "plaintext"
        if self.certificates is not None:
            mutual = self.certificates.files.client_ca_file is not None
            transport = "mutual TLS" if mutual else "TLS"
        log.info(
            "serving",
            extra={"service_name": self.service_name, "port": self.port, "transport": transport},
        )
        if self.health_server is not None:
            log.info("serving health alone in plaintext", extra={"port": self.health_port})
        return self.port

    async def _probe_once(self) -> None:
        try:
            ready = await self._readiness()
        except Exception:
            log.exception("readiness probe raised")
            ready = False
        if ready != self._ready:
            log.log(
                logging.INFO if ready else logging.WARNING,
                "readiness changed",
                extra={"service_name": self.service_name, "ready": ready},
            )
            self._ready = ready
            await self.health.set(self.service_name, SERVING if ready else NOT_SERVING)

    async def _readiness_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.readiness_interval_seconds)
            await self._probe_once()

    async def withdraw(self) -> None:
        """Readiness NOT_SERVING for good (no new traffic is routed here);
        the server still serves what reaches it."""
        if self._readiness_task is not None:
            self._readiness_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._readiness_task
        await self.health.set(self.service_name, NOT_SERVING)

    async def stop(self) -> None:
        """Graceful stop: NOT_SERVING, refuse new RPCs, drain in-flight ones."""
        log.info("shutting down", extra={"grace_seconds": self.settings.grace_period_seconds})
        if self._readiness_task is not None:
            self._readiness_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._readiness_task
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.grace_period_seconds)
        if self.health_server is not None:
            await self.health_server.stop(None)
        if self.metrics_endpoint is not None:
            # Last: a scrape during the drain still sees the final counts.
            await asyncio.to_thread(self.metrics_endpoint.stop)
        log.info("stopped")


async def wait_for_termination_signal() -> None:
    """Returns on the first SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


class RunningService:
    """A started service: its server plus whatever must close after it."""

    def __init__(
        self,
        managed: ManagedServer,
        *closers: Callable[[], Awaitable[None]],
        before_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.managed = managed
        self._closers = closers
        # Awaited first when the service stops, while it still serves: work
        # that outlasts the grace period (the executor's runs) winds down here.
        self._before_stop = before_stop

    @property
    def port(self) -> int:
        """The bound port."""
        return self.managed.port

    async def stop(self) -> None:
        """Drains the server, then closes its resources in order."""
        try:
            if self._before_stop is not None:
                await self._before_stop()
            await self.managed.stop()
            for close in self._closers:
                await close()
        finally:
            # Last, and whatever failed above: the drain and the closers may
            # still have ended spans, and nothing else exports them.
            await asyncio.to_thread(flush_spans)

    async def serve_until_signal(self) -> None:
        """Serves until SIGTERM or SIGINT, then stops."""
        try:
            await wait_for_termination_signal()
        finally:
            await self.stop()


def _write_atomically(path: Path, text: str) -> None:
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", opener=private_opener) as handle:
        handle.write(text)
    temporary.replace(path)
