"""Several memory replicas share the executor's calls (round_robin).

DNS cannot be faked here, so the target is gRPC's static address list,
`ipv4:127.0.0.1:P1,127.0.0.1:P2`: the same client and service config that
spread `dns:///memory:50052` over a headless Service's A records. Each
replica runs its own embedded store, so the patterns each one holds show
where the calls went.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from attune.executor.v1 import executor_pb2_grpc
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.server import start as start_executor
from executor_service.settings import ExecutorSettings
from memory_service.servicekit.lifecycle import ManagedServer
from memory_service.servicekit.settings import ServerSettings
from tests.support.helpers import eventually, run_request, run_to_end
from tests.support.stack import Stack

ALWAYS = {"cheap": 1.0, "capable": 1.0, "premium": 1.0}


async def pattern_ids(stub: memory_pb2_grpc.MemoryServiceAsyncStub) -> set[str]:
    listed = await stub.ListPatterns(
        memory_pb2.ListPatternsRequest(namespace="default", page_size=100), timeout=5
    )
    return {pattern.id for pattern in listed.patterns}


async def test_runs_spread_over_every_replica_in_the_address_list(tmp_path: Path) -> None:
    replicas = [Stack(tmp_path / name) for name in ("a", "b")]
    executor = None
    channel = None
    try:
        for replica in replicas:
            await replica.start_memory()
        target = "ipv4:" + ",".join(replica.memory_address for replica in replicas)
        executor = await start_executor(
            ExecutorSettings(
                port=0,
                data_dir=tmp_path / "executor",
                memory_address=target,
                simulated_success=ALWAYS,
                auth_disabled=True,
            )
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{executor.port}")
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        stores = [replica.memory_stub() for replica in replicas]
        run_ids: list[str] = []

        async def one_more_run() -> list[set[str]]:
            events = await run_to_end(stub, run_request(package_name="demo"))
            run_ids.append(events[-1].run_finished.run.run_id)
            return [await pattern_ids(store) for store in stores]

        # Until every replica has had a store: round_robin alternates, so two
        # runs usually do; the first may come before the second connection is up.
        held = await eventually(one_more_run, lambda sets: all(sets), within=20)
        # Each pattern went to exactly one replica, and none was lost.
        assert not held[0] & held[1]
        assert held[0] | held[1] == set(run_ids)
    finally:
        if channel is not None:
            await channel.close()
        if executor is not None:
            await executor.stop()
        for replica in replicas:
            await replica.close()


async def test_without_round_robin_one_replica_takes_everything(tmp_path: Path) -> None:
    # The control: gRPC's default policy, pick_first, on the same address
    # list. It shows that the service config is what spreads the load.
    replicas = [Stack(tmp_path / name) for name in ("a", "b")]
    try:
        for replica in replicas:
            await replica.start_memory()
        target = "ipv4:" + ",".join(replica.memory_address for replica in replicas)
        async with grpc.aio.insecure_channel(target) as channel:
            stub = memory_pb2_grpc.MemoryServiceStub(channel)
            for index in range(6):
                await stub.StorePattern(
                    memory_pb2.StorePatternRequest(
                        namespace="default",
                        pattern=memory_pb2.Pattern(
                            id=f"p-{index}", type=memory_pb2.PATTERN_TYPE_EXECUTION
                        ),
                    ),
                    timeout=5,
                )
        counts = [len(await pattern_ids(replica.memory_stub())) for replica in replicas]
        assert counts == [6, 0]
    finally:
        for replica in replicas:
            await replica.close()


class Peer(grpc.GenericRpcHandler):
    """Answers any unary call with the caller's address as the server sees it."""

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(self._peer)

    async def _peer(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return context.peer().encode()


async def test_servers_close_old_connections_so_clients_reconnect(tmp_path: Path) -> None:
    # The shared server builder applies the maximum connection age: the same
    # channel soon reaches the server from a new connection (a new client
    # port), which is when a `dns:///` client re-resolves and finds new replicas.
    settings = ServerSettings(
        port=0, max_connection_age_seconds=0.3, max_connection_age_grace_seconds=0.2
    )

    async def ready() -> bool:
        return True

    managed = ManagedServer(
        settings, "test.Peer", lambda server: server.add_generic_rpc_handlers((Peer(),)), ready
    )
    port = await managed.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            ask: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                "/test.Peer/Get"
            )

            async def peer() -> bytes:
                answer: bytes = await ask(b"", timeout=5, wait_for_ready=True)
                return answer

            first = await peer()
            await eventually(peer, lambda now: now != first, within=10)
    finally:
        await managed.stop()
