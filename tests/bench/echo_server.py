"""A bare gRPC echo server: the baseline every benchmark is a ratio against.

No interceptor, no logging, raw bytes in and out: the cost of one gRPC round
trip on this machine, measured in the same run as the thing compared to it.
Given a certificate and key after the port file, it serves TLS instead.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

METHOD = "/attune.bench.Echo/Echo"
STREAM_METHOD = "/attune.bench.Echo/Stream"


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def _stream(
    request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
) -> AsyncIterator[bytes]:
    # The request's length is the number of messages: a bare server stream.
    for _ in range(len(request)):
        yield b"x" * 64


async def serve(port_file: Path, tls_files: list[str]) -> None:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "attune.bench.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(_echo),
            "Stream": grpc.unary_stream_rpc_method_handler(_stream),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    if tls_files:  # cert and key: the baseline of a TLS service.
        cert, key = (Path(name).read_bytes() for name in tls_files)
        credentials = grpc.ssl_server_credentials([(key, cert)])
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(f"{port}\n")
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), sys.argv[2:]))
