"""The executor's client of the memory service.

Every call has a deadline: the configured one, capped by what remains of the
caller's own. Idempotent RPCs retry on UNAVAILABLE through the gRPC service
config, never in hand-written loops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from memory_service.servicekit.logging import request_id_var, trace_id_var

log = logging.getLogger("attune.executor.memory")

Response = TypeVar("Response")

_IDEMPOTENT = ("StorePattern", "GetPattern", "SearchPatterns", "ListPatterns", "CountPatterns")

SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [
                {"service": "attune.memory.v1.MemoryService", "method": m} for m in _IDEMPOTENT
            ],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}

# Codes meaning "the memory service could not answer", as opposed to "it
# answered no": only these send a search to the local fallback.
UNREACHABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class MemoryClient:
    """One channel to the memory service, and the last outcome seen on it."""

    def __init__(self, address: str, namespace: str, timeout_seconds: float) -> None:
        self.address = address
        self.namespace = namespace
        self.timeout_seconds = timeout_seconds
        self._channel = grpc.aio.insecure_channel(
            address,
            options=[
                ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
                ("grpc.enable_retries", 1),
                ("grpc.keepalive_time_ms", 30_000),
                # Reconnect quickly after a memory restart instead of gRPC's
                # default backoff of up to two minutes.
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 5_000),
            ],
        )
        self._stub = memory_pb2_grpc.MemoryServiceStub(self._channel)
        self.reachable: bool | None = None
        self.last_error = ""

    @staticmethod
    def metadata() -> tuple[tuple[str, str], ...]:
        """The caller's request and trace ids, so both services' logs correlate."""
        pairs = []
        if request_id := request_id_var.get():
            pairs.append(("x-request-id", request_id))
        if len(trace_id := trace_id_var.get()) == 32:
            pairs.append(("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"))
        return tuple(pairs)

    def deadline(self, remaining: float | None) -> float:
        """The timeout of one call: configured, capped by the caller's remainder."""
        if remaining is None:
            return self.timeout_seconds
        return max(0.0, min(self.timeout_seconds, remaining - 0.05))

    def _record(self, error: grpc.aio.AioRpcError | None) -> None:
        if error is None:
            self.reachable = True
            self.last_error = ""
            return
        if error.code() in UNREACHABLE_CODES:
            self.reachable = False
        self.last_error = f"{error.code().name}: {error.details()}"

    async def store(
        self, pattern: memory_pb2.Pattern, remaining: float | None = None
    ) -> memory_pb2.StorePatternResponse:
        """Stores a pattern in the executor's namespace."""
        request = memory_pb2.StorePatternRequest(namespace=self.namespace, pattern=pattern)
        return await self._call(self._stub.StorePattern, request, remaining)

    async def search(
        self, request: memory_pb2.SearchPatternsRequest, remaining: float | None = None
    ) -> memory_pb2.SearchPatternsResponse:
        """Searches the executor's namespace."""
        request.namespace = self.namespace
        return await self._call(self._stub.SearchPatterns, request, remaining)

    async def _call(
        self,
        method: Callable[..., Awaitable[Response]],
        request: Any,
        remaining: float | None,
    ) -> Response:
        """One call with its deadline and the caller's ids; records the outcome."""
        try:
            response = await method(
                request, timeout=self.deadline(remaining), metadata=self.metadata()
            )
        except grpc.aio.AioRpcError as error:
            self._record(error)
            raise
        self._record(None)
        return response

    async def probe(self) -> bool:
        """Asks the memory service's readiness; records and returns the answer."""
        stub: Any = health_pb2_grpc.HealthStub(self._channel)  # Its type stubs list no methods.
        request = health_pb2.HealthCheckRequest(service="attune.memory.v1.MemoryService")
        try:
            response = await stub.Check(request, timeout=self.timeout_seconds)
        except grpc.aio.AioRpcError as error:
            self.reachable = False
            self.last_error = f"{error.code().name}: {error.details()}"
            return False
        ready = bool(response.status == health_pb2.HealthCheckResponse.SERVING)
        self.reachable = ready
        if ready:
            self.last_error = ""
        else:
            self.last_error = "memory service is not ready"
        return ready

    async def probe_forever(self, interval_seconds: float) -> None:
        """Keeps `reachable` current even while no call is made."""
        while True:
            await self.probe()
            await asyncio.sleep(interval_seconds)

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close()
