"""Both services started in this process on 127.0.0.1, port 0: the stack most tests use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from attune.executor.v1 import executor_pb2_grpc
from attune.memory.v1 import memory_pb2_grpc
from executor_service.server import start as start_executor
from executor_service.settings import ExecutorSettings
from memory_service.security.crypto import generate_key
from memory_service.server import start as start_memory
from memory_service.servicekit.lifecycle import RunningService
from memory_service.servicekit.tls import ClientTls
from memory_service.settings import MemorySettings


@dataclass
class Stack:
    """A memory service and an executor in this process, with client stubs."""

    root: Path
    memory: RunningService | None = None
    executor: RunningService | None = None
    memory_port: int = 0
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    executor_overrides: dict[str, object] = field(default_factory=dict)
    memory_overrides: dict[str, object] = field(default_factory=dict)
    # One key per stack, kept across restarts: SENSITIVE patterns stay readable.
    encryption_keys: str = field(default_factory=lambda: f"test:{generate_key()}")
    # How the stack's own channels connect when the services serve TLS.
    client_tls: ClientTls | None = None

    def memory_settings(self) -> MemorySettings:
        # Authentication is off unless a test configures tokens: most tests
        # are about something else. tests/integration/test_auth.py turns it on.
        overrides: dict[str, object] = {"encryption_keys": self.encryption_keys}
        if "tokens_file" not in self.memory_overrides:
            overrides["auth_disabled"] = True
        overrides.update(self.memory_overrides)
        return MemorySettings(
            port=self.memory_port,
            data_dir=self.root / "memory",
            **overrides,  # type: ignore[arg-type]
        )

    async def start_memory(self) -> None:
        """Starts (or restarts, on the same port and data) the memory service."""
        self.memory = await start_memory(self.memory_settings())
        self.memory_port = self.memory.port

    async def stop_memory(self) -> None:
        """Stops the memory service gracefully."""
        assert self.memory is not None
        await self.memory.stop()
        self.memory = None

    async def start_executor(self) -> None:
        # As for memory: callers' authentication is off unless a test configures tokens.
        overrides: dict[str, object] = {}
        if "tokens_file" not in self.executor_overrides:
            overrides["auth_disabled"] = True
        overrides.update(self.executor_overrides)
        settings = ExecutorSettings(
            port=0,
            data_dir=self.root / "executor",
            memory_address=f"127.0.0.1:{self.memory_port}",
            **overrides,  # type: ignore[arg-type]
        )
        self.executor = await start_executor(settings)

    def channel(self, port: int) -> grpc.aio.Channel:
        """A channel to a port on this machine, closed with the stack."""
        return self._channel(port)

    def _channel(self, port: int) -> grpc.aio.Channel:
        address = f"127.0.0.1:{port}"
        tls = self.client_tls
        if tls is None:
            channel = grpc.aio.insecure_channel(address)
        else:
            channel = grpc.aio.secure_channel(address, tls.credentials(), options=tls.options())
        self.channels.append(channel)
        return channel

    @property
    def executor_address(self) -> str:
        assert self.executor is not None
        return f"127.0.0.1:{self.executor.port}"

    @property
    def memory_address(self) -> str:
        return f"127.0.0.1:{self.memory_port}"

    def executor_stub(self) -> executor_pb2_grpc.ExecutorServiceAsyncStub:
        assert self.executor is not None
        return executor_pb2_grpc.ExecutorServiceStub(self._channel(self.executor.port))

    def memory_stub(self) -> memory_pb2_grpc.MemoryServiceAsyncStub:
        return memory_pb2_grpc.MemoryServiceStub(self._channel(self.memory_port))

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
        if self.executor is not None:
            await self.executor.stop()
        if self.memory is not None:
            await self.memory.stop()


@asynccontextmanager
async def running_stack(tmp_path: Path, **executor_overrides: object) -> AsyncIterator[Stack]:
    """Both services started, the executor pointing at the memory service."""
    async with started(Stack(tmp_path, executor_overrides=executor_overrides)) as running:
        yield running


@asynccontextmanager
async def started(stack: Stack) -> AsyncIterator[Stack]:
    """The stack's services started, then closed when done."""
    await stack.start_memory()
    await stack.start_executor()
    try:
        yield stack
    finally:
        await stack.close()
