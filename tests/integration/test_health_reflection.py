"""Health (liveness and readiness) and server reflection on both services."""

from __future__ import annotations

from typing import Any, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support.stack import Stack

EXECUTOR = "attune.executor.v1.ExecutorService"
MEMORY = "attune.memory.v1.MemoryService"
SERVING = health_pb2.HealthCheckResponse.SERVING


async def check(address: str, service: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # Its type stubs list no methods.
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(response.status)


async def listed_services(address: str) -> set[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(cast(Any, channel))  # Typed sync-only.
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        names: set[str] = set()
        async for response in stub.ServerReflectionInfo(iter([request]), timeout=5):
            names.update(s.name for s in response.list_services_response.service)
        return names


async def test_liveness_and_readiness_are_serving(stack: Stack) -> None:
    assert await check(stack.executor_address, "") == SERVING
    assert await check(stack.executor_address, EXECUTOR) == SERVING
    assert await check(stack.memory_address, "") == SERVING
    assert await check(stack.memory_address, MEMORY) == SERVING


async def test_unknown_health_service_is_not_found(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await check(stack.memory_address, "no.such.Service")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_full_service_names(stack: Stack) -> None:
    executor_services = await listed_services(stack.executor_address)
    memory_services = await listed_services(stack.memory_address)
    assert {EXECUTOR, "grpc.health.v1.Health"} <= executor_services
    assert {MEMORY, "grpc.health.v1.Health"} <= memory_services


async def test_reflection_serves_the_contract(stack: Stack) -> None:
    async with grpc.aio.insecure_channel(stack.executor_address) as channel:
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(cast(Any, channel))
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=EXECUTOR)
        responses = [r async for r in stub.ServerReflectionInfo(iter([request]), timeout=5)]
    files = responses[0].file_descriptor_response.file_descriptor_proto
    assert files, "reflection must return the descriptor of the executor service"


async def test_readiness_after_graceful_stop_is_not_serving(stack: Stack) -> None:
    assert stack.memory is not None
    health = stack.memory.managed.health
    await stack.memory.managed.health.enter_graceful_shutdown()
    request = health_pb2.HealthCheckRequest(service=MEMORY)
    async with grpc.aio.insecure_channel(stack.memory_address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(request, timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert health is stack.memory.managed.health
