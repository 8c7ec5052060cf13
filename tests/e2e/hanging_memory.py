"""A memory service that hangs, as its own process: it accepts every call and answers none.

    python -m tests.e2e.hanging_memory --port-file PATH

It serves attune.memory.v1.MemoryService and grpc.health.v1.Health on
127.0.0.1, port 0, and writes the bound port to PATH once it is serving.
Every call to either service is accepted (the connection is up, the request
read) and then left waiting forever, so only the caller's deadline ends it:
the failure a stuck or overloaded peer produces, unlike a refused connection.
Each call is logged to stderr as `hang: /service/Method` when it arrives, so
a test can tell which calls reached it. SIGTERM or SIGINT stops it (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from attune.memory.v1 import memory_pb2

# Every method of both services, full name to whether it streams its answers.
# A generic handler with no method list would also swallow calls to services
# a real memory service does not have; those get UNIMPLEMENTED, as there.
HUNG_METHODS = {
    f"/{service.full_name}/{method.name}": method.server_streaming
    for service in (
        memory_pb2.DESCRIPTOR.services_by_name["MemoryService"],
        health_pb2.DESCRIPTOR.services_by_name["Health"],
    )
    for method in service.methods
}

LOG_PREFIX = "hang: "


class Hang(grpc.GenericRpcHandler):
    """Takes every call of HUNG_METHODS and never answers it."""

    def __init__(self) -> None:
        # Never set: each hung call ends only by its deadline, its
        # cancellation, or the server's stop, which cancels the handler.
        self._never = asyncio.Event()

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        if method not in HUNG_METHODS:
            return None

        # No deserializer: requests stay bytes, never parsed, never answered.
        async def hang(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            await self._wait(method)
            raise AssertionError("unreachable: the event is never set")

        async def hang_stream(
            request: bytes, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[bytes]:
            await self._wait(method)
            raise AssertionError("unreachable: the event is never set")
            yield b""  # Makes this an async generator, the shape of a streaming handler.

        if HUNG_METHODS[method]:
            return grpc.unary_stream_rpc_method_handler(hang_stream)
        return grpc.unary_unary_rpc_method_handler(hang)

    async def _wait(self, method: str) -> None:
        print(f"{LOG_PREFIX}{method}", file=sys.stderr, flush=True)
        await self._never.wait()


def write_port_file(path: Path, port: int) -> None:
    """Writes the port so that a reader never sees a partial file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(f"{port}\n")
    temporary.replace(path)


async def serve(port_file: Path) -> int:
    """Serves until SIGTERM or SIGINT; returns the exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # Installed before the port file appears, so a parent that signals as
    # soon as it has read the port always gets a clean exit.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((Hang(),))
    port = server.add_insecure_port("127.0.0.1:0")
    if port == 0:
        print("could not bind 127.0.0.1:0", file=sys.stderr)
        return 1
    await server.start()
    write_port_file(port_file, port)
    print(f"serving on 127.0.0.1:{port}, answering nothing", file=sys.stderr, flush=True)
    await stop.wait()
    # No grace: the hung calls would never finish within one. Stopping
    # cancels them and frees the port for whatever takes it next.
    await server.stop(None)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port-file", type=Path, required=True, help="where to write the port once serving"
    )
    arguments = parser.parse_args()
    return asyncio.run(serve(arguments.port_file))


if __name__ == "__main__":
    sys.exit(main())
