"""TLS and mutual TLS on real servers: who may connect, and certificates rotated live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from memory_service.servicekit.tls import ClientTls
from tests.support.helpers import PUBLISH_DEFAULT_ANSWERS, run_request, run_to_end
from tests.support.stack import Stack
from tests.support.tls_certs import SERVER_NAME, CertificateAuthority, Issued, swap_in

MEMORY_SERVICE = memory_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Pki:
    """A CA with a server and a client certificate, and a stranger CA with its own client."""

    ca: CertificateAuthority
    server: Issued
    client: Issued
    stranger: CertificateAuthority
    stranger_client: Issued

    def client_tls(self, server_name: str | None = SERVER_NAME) -> ClientTls:
        return ClientTls(self.ca.cert_pem, self.client.cert_pem, self.client.key_pem, server_name)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = CertificateAuthority(tmp_path / "pki")
    stranger = CertificateAuthority(tmp_path / "stranger", name="Stranger CA")
    return Pki(ca, ca.server(), ca.client(), stranger, stranger.client())


def tls_settings(pki: Pki, mutual: bool = True) -> dict[str, object]:
    settings: dict[str, object] = {"tls_cert_file": pki.server.cert, "tls_key_file": pki.server.key}
    if mutual:
        settings["tls_client_ca_file"] = pki.ca.cert
    return settings


@pytest.fixture
async def memory_stack(tmp_path: Path, pki: Pki) -> AsyncIterator[Stack]:
    running = Stack(tmp_path, memory_overrides={**tls_settings(pki), "health_port": 0})
    await running.start_memory()
    try:
        yield running
    finally:
        await running.close()


async def count(port: int, tls: ClientTls | None) -> int:
    """CountPatterns over a fresh channel (so a fresh handshake)."""
    address = f"127.0.0.1:{port}"
    if tls is None:
        channel = grpc.aio.insecure_channel(address)
    else:
        channel = grpc.aio.secure_channel(address, tls.credentials(), options=tls.options())
    async with channel:
        stub = memory_pb2_grpc.MemoryServiceStub(channel)
        request = memory_pb2.CountPatternsRequest(namespace="default")
        return (await stub.CountPatterns(request, timeout=5)).total_count


async def test_mutual_tls_admits_a_client_of_the_ca(memory_stack: Stack, pki: Pki) -> None:
    assert await count(memory_stack.memory_port, pki.client_tls()) == 0


async def test_the_certificate_names_127_0_0_1_so_no_override_is_needed(
    memory_stack: Stack, pki: Pki
) -> None:
    assert await count(memory_stack.memory_port, pki.client_tls(server_name=None)) == 0


async def test_plaintext_client_is_refused(memory_stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await count(memory_stack.memory_port, None)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
async def test_mutual_tls_refuses_clients_the_ca_did_not_sign(
    memory_stack: Stack, pki: Pki, who: str
) -> None:
    if who == "no certificate":
        tls = ClientTls(pki.ca.cert_pem, server_name=SERVER_NAME)
    else:
        stranger = pki.stranger_client
        tls = ClientTls(pki.ca.cert_pem, stranger.cert_pem, stranger.key_pem, SERVER_NAME)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await count(memory_stack.memory_port, tls)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_client_refuses_a_server_whose_certificate_names_another_host(
    memory_stack: Stack, pki: Pki
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await count(memory_stack.memory_port, pki.client_tls(server_name="elsewhere.test"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_client_refuses_a_server_signed_by_a_ca_it_does_not_trust(
    memory_stack: Stack, pki: Pki
) -> None:
    tls = ClientTls(pki.stranger.cert_pem, pki.client.cert_pem, pki.client.key_pem, SERVER_NAME)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await count(memory_stack.memory_port, tls)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_health_port_answers_probes_in_plaintext_on_loopback_and_nothing_else(
    memory_stack: Stack,
) -> None:
    assert memory_stack.memory is not None
    health_port = memory_stack.memory.managed.health_port
    assert health_port not in (0, memory_stack.memory_port)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port}") as channel:
        health: object = health_pb2_grpc.HealthStub(channel)
        for service in ("", MEMORY_SERVICE):
            request = health_pb2.HealthCheckRequest(service=service)
            assert (await health.Check(request, timeout=5)).status == SERVING  # type: ignore[attr-defined]
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await memory_pb2_grpc.MemoryServiceStub(channel).CountPatterns(
                memory_pb2.CountPatternsRequest(namespace="default"), timeout=5
            )
        assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_rotated_certificate_serves_new_connections_while_open_ones_carry_on(
    tmp_path: Path,
) -> None:
    # The Secret as Kubernetes mounts it: stable names, symlinks into a
    # versioned folder, swapped atomically on rotation.
    old_ca = CertificateAuthority(tmp_path / "old")
    new_ca = CertificateAuthority(tmp_path / "new", name="Rotated CA")
    old, new = old_ca.server(), new_ca.server()
    live = tmp_path / "secret"
    live.mkdir()
    (live / "tls.crt").symlink_to(old.cert)
    (live / "tls.key").symlink_to(old.key)
    settings = {"tls_cert_file": live / "tls.crt", "tls_key_file": live / "tls.key"}
    running = Stack(tmp_path, memory_overrides=dict(settings))
    await running.start_memory()
    trusts_old = ClientTls(old_ca.cert_pem, server_name=SERVER_NAME)
    trusts_new = ClientTls(new_ca.cert_pem, server_name=SERVER_NAME)
    port = running.memory_port
    address = f"127.0.0.1:{port}"
    try:
        assert await count(port, trusts_old) == 0
        with pytest.raises(grpc.aio.AioRpcError):
            await count(port, trusts_new)

        async with grpc.aio.secure_channel(
            address, trusts_old.credentials(), options=trusts_old.options()
        ) as existing:
            health: object = health_pb2_grpc.HealthStub(existing)
            watch = health.Watch(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(service=MEMORY_SERVICE), timeout=30
            )
            assert (await watch.read()).status == SERVING

            swap_in(live / "tls.key", new.key)
            swap_in(live / "tls.crt", new.cert)

            # New connections get the new certificate: only a client trusting
            # the new CA completes the handshake.
            assert await count(port, trusts_new) == 0
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await count(port, trusts_old)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert running.memory is not None
            assert running.memory.managed.certificates is not None
            assert running.memory.managed.certificates.reloads == 1

            # The connection opened before the rotation carries on: its
            # stream still gets updates, and new calls on it still work.
            await running.memory.managed.health.set(MEMORY_SERVICE, NOT_SERVING)
            assert (await watch.read()).status == NOT_SERVING
            stub = memory_pb2_grpc.MemoryServiceStub(existing)
            request = memory_pb2.CountPatternsRequest(namespace="default")
            assert (await stub.CountPatterns(request, timeout=5)).total_count == 0
            watch.cancel()
    finally:
        await running.close()


async def test_executor_stores_its_pattern_over_mutual_tls(tmp_path: Path, pki: Pki) -> None:
    executor_client = pki.ca.client("executor")
    running = Stack(
        tmp_path,
        memory_overrides=tls_settings(pki),
        executor_overrides={
            **tls_settings(pki),
            "memory_tls_ca_file": pki.ca.cert,
            "memory_tls_cert_file": executor_client.cert,
            "memory_tls_key_file": executor_client.key,
            "memory_tls_server_name": SERVER_NAME,
        },
        client_tls=pki.client_tls(),
    )
    await running.start_memory()
    await running.start_executor()
    try:
        request = run_request(**PUBLISH_DEFAULT_ANSWERS)
        events = await run_to_end(running.executor_stub(), request)
        stored = [event.pattern_stored for event in events if event.HasField("pattern_stored")]
        assert len(stored) == 1, [event.WhichOneof("event") for event in events]
        found = await running.memory_stub().GetPattern(
            memory_pb2.GetPatternRequest(namespace="default", pattern_id=stored[0].pattern_id),
            timeout=5,
        )
        assert found.pattern.id == stored[0].pattern_id
    finally:
        await running.close()


async def test_executor_without_a_client_certificate_queues_instead_of_storing(
    tmp_path: Path, pki: Pki
) -> None:
    running = Stack(
        tmp_path,
        memory_overrides=tls_settings(pki),
        executor_overrides={
            "memory_tls_ca_file": pki.ca.cert,
            "memory_tls_server_name": SERVER_NAME,
        },
    )
    await running.start_memory()
    await running.start_executor()
    try:
        events = await run_to_end(running.executor_stub(), run_request(**PUBLISH_DEFAULT_ANSWERS))
        kinds = [event.WhichOneof("event") for event in events]
        assert "pattern_queued" in kinds
        assert "pattern_stored" not in kinds
    finally:
        await running.close()
