"""Readiness follows the probe of what a service needs; liveness does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from memory_service.servicekit.lifecycle import ManagedServer
from memory_service.servicekit.settings import ServerSettings

SERVICE = "attune.test.v1.ProbeService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_readiness_tracks_the_dependency_and_liveness_stays_up(tmp_path: Path) -> None:
    dependency_up = True

    async def probe() -> bool:
        return dependency_up

    settings = ServerSettings(port=0, readiness_interval_seconds=0.02)
    server = ManagedServer(settings, SERVICE, lambda _: None, probe)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)  # Its type stubs list no methods.
            watch = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10)
            seen = [(await watch.read()).status]
            dependency_up = False
            seen.append((await watch.read()).status)
            live = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            dependency_up = True
            seen.append((await watch.read()).status)
            watch.cancel()
        assert seen == [SERVING, NOT_SERVING, SERVING]
        assert live.status == SERVING
    finally:
        await server.stop()


async def test_a_probe_that_raises_means_not_ready(tmp_path: Path) -> None:
    async def probe() -> bool:
        raise OSError("disk gone")

    server = ManagedServer(ServerSettings(port=0), SERVICE, lambda _: None, probe)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            response = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
        assert response.status == NOT_SERVING
    finally:
        await server.stop()
