"""Both services over raw channels: memory with authentication on, the executor pointed at it.

Calls here go through `channel.unary_unary` / `unary_stream` with bytes in and
bytes out, so a test can send what no generated stub would (unknown fields,
corrupt bytes) and read exactly what the server sent back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from tests.support.proto_strategies import varint
from tests.support.secured_memory import TEAM_A, SecuredMemory, secured_memory

MEMORY = memory_pb2.DESCRIPTOR.services_by_name["MemoryService"]
EXECUTOR = executor_pb2.DESCRIPTOR.services_by_name["ExecutorService"]
SERVICES: tuple[ServiceDescriptor, ...] = (MEMORY, EXECUTOR)
# The executor's own memory identity: a writer of TEAM_A, where its patterns go.
EXECUTOR_USER = "alice"
Metadata = tuple[tuple[str, str], ...]


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field `number` (wire type 2) holding `payload`, as it goes on the wire."""
    return varint((number << 3) | 2) + varint(len(payload)) + payload


def every_method() -> list[MethodDescriptor]:
    """Every RPC of both services, from their descriptors."""
    return [method for service in SERVICES for method in service.methods]


def method_path(method: MethodDescriptor) -> str:
    """The gRPC path of a method, e.g. `/attune.memory.v1.MemoryService/GetPattern`."""
    return f"/{method.containing_service.full_name}/{method.name}"


@dataclass
class SecuredPair:
    """The running pair, a raw channel to each, and the memory tokens."""

    memory: SecuredMemory
    memory_channel: grpc.aio.Channel
    executor_channel: grpc.aio.Channel

    def auth(self, user: str) -> Metadata:
        """The call metadata of a memory user (the executor forwards it to memory)."""
        return self.memory.auth(user)

    def channel_for(self, method: MethodDescriptor) -> grpc.aio.Channel:
        """The channel serving the method's service."""
        return self.memory_channel if method.containing_service is MEMORY else self.executor_channel

    async def call(
        self, method: MethodDescriptor, body: bytes, metadata: Metadata, deadline: float = 10.0
    ) -> list[bytes]:
        """The raw response messages of one call (one for unary, all for streams)."""
        channel = self.channel_for(method)
        # No serializers: bytes go out and come back untouched.
        if method.server_streaming:
            streaming: Any = channel.unary_stream(method_path(method))
            return [
                message async for message in streaming(body, metadata=metadata, timeout=deadline)
            ]
        unary: Any = channel.unary_unary(method_path(method))
        return [await unary(body, metadata=metadata, timeout=deadline)]


@asynccontextmanager
async def secured_pair(
    tmp_path: Path,
    memory_overrides: Mapping[str, object] | None = None,
    **executor_overrides: object,
) -> AsyncIterator[SecuredPair]:
    """Memory with tokens and encryption (and `memory_overrides`), and an
    executor with its own memory token."""
    async with secured_memory(tmp_path, **(memory_overrides or {})) as memory:
        stack = memory.stack
        stack.executor_overrides = {
            "memory_token": memory.tokens[EXECUTOR_USER],
            "memory_namespace": TEAM_A,
            **executor_overrides,
        }
        await stack.start_executor()
        assert stack.executor is not None
        memory_channel = grpc.aio.insecure_channel(stack.memory_address)
        executor_channel = grpc.aio.insecure_channel(stack.executor_address)
        stack.channels.extend((memory_channel, executor_channel))
        yield SecuredPair(memory, memory_channel, executor_channel)
