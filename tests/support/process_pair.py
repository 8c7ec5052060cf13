"""A memory service and an executor as processes, for tests that drive the pair."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import grpc

from attune.executor.v1 import executor_pb2_grpc
from executor_service.dev.stack import ServiceProcess, executor_process, memory_process


@contextmanager
def process_pair(root: Path, **executor_settings: Any) -> Iterator[ServiceProcess]:
    """Both services on free ports, logging under `root`; yields the executor,
    started with `executor_settings` (executor_process's keyword arguments)."""
    with both_processes(root, **executor_settings) as (_, executor):
        yield executor


@contextmanager
def both_processes(
    root: Path,
    memory_settings: Mapping[str, str] | None = None,
    *,
    environment: Mapping[str, str] | None = None,
    **executor_settings: Any,
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """As process_pair, yielding the memory service (with `memory_settings`,
    MEMORY_* without the prefix) and the executor; `environment`, if given,
    is both processes' environment."""
    with (
        (root / "memory.log").open("w") as memory_log,
        (root / "executor.log").open("w") as executor_log,
    ):
        memory = memory_process(
            root, log=memory_log, settings=memory_settings, environment=environment
        )
        running: ServiceProcess | None = None
        try:
            memory.start()
            running = executor_process(
                root, memory.address, log=executor_log, environment=environment, **executor_settings
            ).start()
            yield memory, running
        finally:
            if running is not None:
                running.kill()
            memory.kill()


@asynccontextmanager
async def executor_stub(
    address: str,
) -> AsyncIterator[executor_pb2_grpc.ExecutorServiceAsyncStub]:
    """An asyncio stub of the executor at `address`, over plaintext."""
    async with grpc.aio.insecure_channel(address) as channel:
        yield executor_pb2_grpc.ExecutorServiceStub(channel)
