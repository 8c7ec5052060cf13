"""The polyglot guard: a Node client built from the .proto files drives the Python servers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from attune.executor.v1 import executor_pb2
from memory_service.servicekit.tls import ClientTls
from tests.support.stack import Stack
from tests.support.tls_certs import SERVER_NAME, CertificateAuthority

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "tests" / "polyglot" / "client.js"
CLIENT_TIMEOUT_SECONDS = 60.0
EXPECTED_CHECKS = [
    "run_workflow",
    "search_runs",
    "get_pattern",
    "search_patterns",
    "get_template_not_found",
]


def node_or_fail() -> str:
    """The node executable. Missing Node fails the test: `make test` installs it."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not on PATH: the polyglot guard needs Node.js 18+ "
            "(`make test` installs it; or install nodejs and run `npm ci`)"
        )
    if not (REPO / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail(f"@grpc/grpc-js is not installed: run `npm ci` in {REPO}")
    return node


async def run_client(
    node: str, *args: str, env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    """Runs client.js with args (and extra environment); its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        node,
        str(CLIENT.relative_to(REPO)),
        *args,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLIENT_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"the Node client did not finish within {CLIENT_TIMEOUT_SECONDS} s")
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.fixture
async def mutual_tls_stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, dict[str, str]]]:
    """Both services over mutual TLS, and the client's ATTUNE_TLS_* environment."""
    ca = CertificateAuthority(tmp_path / "pki")
    server, executor_client, user = ca.server(), ca.client("executor"), ca.client("user")
    served = {
        "tls_cert_file": server.cert,
        "tls_key_file": server.key,
        "tls_client_ca_file": ca.cert,
    }
    running = Stack(
        tmp_path,
        memory_overrides=dict(served),
        executor_overrides={
            **served,
            "memory_tls_ca_file": ca.cert,
            "memory_tls_cert_file": executor_client.cert,
            "memory_tls_key_file": executor_client.key,
            "memory_tls_server_name": SERVER_NAME,
        },
        client_tls=ClientTls(ca.cert_pem, user.cert_pem, user.key_pem, SERVER_NAME),
    )
    await running.start_memory()
    await running.start_executor()
    env = {
        "ATTUNE_TLS_CA": str(ca.cert),
        "ATTUNE_TLS_CERT": str(user.cert),
        "ATTUNE_TLS_KEY": str(user.key),
        "ATTUNE_TLS_SERVER_NAME": SERVER_NAME,
    }
    try:
        yield running, env
    finally:
        await running.close()


# Above the client's own limit, so a hang is reported by run_client, not killed blind.
@pytest.mark.timeout(CLIENT_TIMEOUT_SECONDS + 30)
async def test_node_client_drives_both_services(stack: Stack) -> None:
    await drive_both_services(stack)


@pytest.mark.timeout(CLIENT_TIMEOUT_SECONDS + 30)
async def test_node_client_drives_both_services_over_mutual_tls(
    mutual_tls_stack: tuple[Stack, dict[str, str]],
) -> None:
    stack, env = mutual_tls_stack
    await drive_both_services(stack, env)


async def drive_both_services(stack: Stack, env: Mapping[str, str] | None = None) -> None:
    """The Node client's checks against the stack, and its run seen from Python."""
    node = node_or_fail()
    code, stdout, stderr = await run_client(
        node, stack.executor_address, stack.memory_address, env=env
    )
    assert code == 0, f"the Node client failed (exit {code}):\n{stderr}{stdout}"

    lines = stdout.strip().splitlines()
    assert lines, f"the Node client printed nothing; stderr:\n{stderr}"
    result = json.loads(lines[-1])
    assert result["ok"] is True
    assert result["checks"] == EXPECTED_CHECKS

    # The run the Node client saw is the one the executor serves to Python.
    run_id = result["run_id"]
    response = await stack.executor_stub().GetRun(
        executor_pb2.GetRunRequest(run_id=run_id), timeout=5
    )
    assert response.run.run_id == run_id
    assert response.run.template_id == "python_package_publish"
    assert response.run.answers["package_name"].string_value == "polyglot-guard"
