"""Both services as processes over mutual TLS, and the CLI reaching them with --tls-*."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.dev.stack import ServiceProcess, executor_process, memory_process
from memory_service.servicekit.tls import ClientTls
from tests.support.tls_certs import SERVER_NAME, CertificateAuthority, Issued

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Secured:
    memory: ServiceProcess
    executor: ServiceProcess
    ca: CertificateAuthority
    user: Issued


def server_settings(ca: CertificateAuthority, server: Issued) -> dict[str, str]:
    return {
        "TLS_CERT_FILE": str(server.cert),
        "TLS_KEY_FILE": str(server.key),
        "TLS_CLIENT_CA_FILE": str(ca.cert),
    }


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("tls")
    ca = CertificateAuthority(root / "pki")
    server, executor_client, user = ca.server(), ca.client("executor"), ca.client("user")
    probe = ClientTls(ca.cert_pem, user.cert_pem, user.key_pem, SERVER_NAME)
    with (
        (root / "memory.log").open("w") as memory_log,
        (root / "executor.log").open("w") as executor_log,
    ):
        memory = memory_process(root, log=memory_log, settings=server_settings(ca, server))
        memory.tls = probe
        executor: ServiceProcess | None = None
        try:
            memory.start()
            executor = executor_process(
                root,
                memory.address,
                log=executor_log,
                TLS_CERT_FILE=str(server.cert),
                TLS_KEY_FILE=str(server.key),
                TLS_CLIENT_CA_FILE=str(ca.cert),
                MEMORY_TLS_CA_FILE=str(ca.cert),
                MEMORY_TLS_CERT_FILE=str(executor_client.cert),
                MEMORY_TLS_KEY_FILE=str(executor_client.key),
                MEMORY_TLS_SERVER_NAME=SERVER_NAME,
            )
            executor.tls = probe
            executor.start()
            yield Secured(memory, executor, ca, user)
        finally:
            if executor is not None:
                executor.kill()
            memory.kill()


def attune(secured: Secured, *args: str) -> subprocess.CompletedProcess[str]:
    tls = [
        "--tls-ca",
        str(secured.ca.cert),
        "--tls-cert",
        str(secured.user.cert),
        "--tls-key",
        str(secured.user.key),
        "--tls-server-name",
        SERVER_NAME,
    ]
    return subprocess.run(
        [sys.executable, "-m", "executor_service.cli.app", *tls, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_cli_runs_a_workflow_over_mutual_tls_and_memory_stores_it(secured: Secured) -> None:
    args = ["--address", secured.executor.address, "--timeout", "30"]
    result = attune(
        secured, "run", "python_package_publish", "--json", "-a", "package_name=tls", *args
    )
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["pattern_delivery"] == "PATTERN_DELIVERY_STORED"
    tls = ClientTls(secured.ca.cert_pem, secured.user.cert_pem, secured.user.key_pem, SERVER_NAME)
    with grpc.secure_channel(secured.memory.address, tls.credentials(), tls.options()) as channel:
        stub = memory_pb2_grpc.MemoryServiceStub(channel)
        found = stub.GetPattern(
            memory_pb2.GetPatternRequest(namespace="default", pattern_id=run["run_id"]), timeout=5
        )
    assert found.pattern.id == run["run_id"]


def test_cli_without_a_client_certificate_is_turned_away(secured: Secured) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "executor_service.cli.app",
            "--tls-ca",
            str(secured.ca.cert),
            "--tls-server-name",
            SERVER_NAME,
            "templates",
            "list",
            "--address",
            secured.executor.address,
            "--timeout",
            "5",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "unreachable" in result.stderr or "UNAVAILABLE" in result.stderr
    assert "Traceback" not in result.stderr
