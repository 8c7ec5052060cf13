"""The services as processes, driven the way users and Kubernetes drive them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.dev.stack import (
    EXECUTOR_SERVICE,
    MEMORY_SERVICE,
    ServiceProcess,
    executor_process,
    memory_process,
)
from tests.support.helpers import run_request

REPO = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING
GRACE_SECONDS = 10.0


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """A memory service and a slow-running executor as real processes."""
    with (
        (tmp_path / "memory.log").open("w") as memory_log,
        (tmp_path / "executor.log").open("w") as executor_log,
    ):
        memory = memory_process(tmp_path, log=memory_log).start()
        executor = executor_process(
            tmp_path,
            memory.address,
            log=executor_log,
            SIMULATED_LATENCY_MS="150",
            GRACE_PERIOD_SECONDS=str(GRACE_SECONDS),
        ).start()
        try:
            yield memory, executor
        finally:
            executor.kill()
            memory.kill()


def test_health_checks_report_serving(processes: tuple[ServiceProcess, ServiceProcess]) -> None:
    memory, executor = processes
    assert memory.health("") == SERVING
    assert memory.health(MEMORY_SERVICE) == SERVING
    assert executor.health("") == SERVING
    assert executor.health(EXECUTOR_SERVICE) == SERVING


def refused_after_sigterm(address: str) -> grpc.RpcError | None:
    """The error of a new RPC once shutdown has begun; None if none was refused.

    The signal is handled asynchronously, so this retries (bounded) until the
    server refuses new work.
    """
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with grpc.insecure_channel(address) as fresh:
            late = executor_pb2_grpc.ExecutorServiceStub(fresh)
            try:
                late.GetStatus(executor_pb2.GetStatusRequest(), timeout=1)
            except grpc.RpcError as error:
                return error
    return None


def test_sigterm_refuses_new_rpcs_finishes_the_in_flight_run_and_exits_zero(
    processes: tuple[ServiceProcess, ServiceProcess], tmp_path: Path
) -> None:
    memory, executor = processes
    assert executor.process is not None
    with grpc.insecure_channel(executor.address) as channel:
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        stream = stub.RunWorkflow(run_request(package_name="demo"), timeout=30)
        assert next(stream).HasField("run_started")
        signalled = time.monotonic()
        executor.process.send_signal(signal.SIGTERM)
        refused = refused_after_sigterm(executor.address)
        rest = list(stream)
    assert refused is not None, "new RPCs were still accepted 5 s after SIGTERM"
    # gRPC core cancels calls that arrive mid-shutdown, and refuses them after.
    assert refused.code() in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    assert rest[-1].HasField("run_finished"), "the in-flight run must complete"
    run = rest[-1].run_finished.run
    assert run.status != executor_pb2.RUN_STATUS_CANCELLED
    assert Path(run.run_dir, "result.json").is_file()
    assert executor.process.wait(GRACE_SECONDS + 5) == 0
    assert time.monotonic() - signalled < GRACE_SECONDS + 5
    assert memory.terminate() == 0
    lines = [json.loads(line) for line in (tmp_path / "executor.log").read_text().splitlines()]
    messages = [line["msg"] for line in lines]
    assert messages.index("shutting down") < messages.index("stopped")


def test_log_lines_are_json_with_a_request_id_per_rpc(
    processes: tuple[ServiceProcess, ServiceProcess], tmp_path: Path
) -> None:
    _, executor = processes
    with grpc.insecure_channel(executor.address) as channel:
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        stub.GetStatus(
            executor_pb2.GetStatusRequest(), timeout=5, metadata=(("x-request-id", "req-42"),)
        )
        stub.ListTemplates(executor_pb2.ListTemplatesRequest(), timeout=5)
    assert executor.terminate() == 0
    lines = [json.loads(line) for line in (tmp_path / "executor.log").read_text().splitlines()]
    finished = [line for line in lines if line["msg"] == "rpc finished"]
    by_method = {line["method"]: line for line in finished}
    assert by_method["/attune.executor.v1.ExecutorService/GetStatus"]["request_id"] == "req-42"
    listed = by_method["/attune.executor.v1.ExecutorService/ListTemplates"]
    assert listed["request_id"]
    assert listed["request_id"] != "req-42"
    assert all("trace_id" in line for line in finished)


def test_make_run_demo_tells_the_whole_story(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "executor_service.dev.demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "pattern STORED" in out
    assert "source: memory" in out
    # "test coverage" names a question of two templates, neither named: an OR.
    understood = (
        "success = true AND (form_responses.test_coverage_required > 80"
        " OR form_responses.test_coverage_target > 80)"
    )
    assert f"interpreted filter: {understood}" in out
    assert "memory service exited with code 0" in out
    assert "pattern QUEUED" in out
    assert "source: local_files  (degraded:" in out
    assert "outbox: 0 queued; memory reachable: True" in out
    assert "Analytics: every template, 15 runs" in out
    assert "Recommendations: python_package_publish" in out
    assert "executor exited with code 0" in out


def test_make_serve_stops_both_services_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "MEMORY_PORT": "0", "EXECUTOR_PORT": "0", "ATTUNE_DATA_DIR": str(tmp_path)}
    # Its own process group, so cleanup reaches the services it started too.
    server = subprocess.Popen(
        [sys.executable, "-m", "executor_service.dev.stack"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stderr is not None
        announcement = ""
        for line in server.stderr:
            if line.startswith("serving:"):
                announcement = line
                break
        assert announcement, "devstack never announced it was serving"
        executor_address = announcement.split()[2].rstrip(",")
        with grpc.insecure_channel(executor_address) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            templates = stub.ListTemplates(executor_pb2.ListTemplatesRequest(), timeout=5)
        assert "python_package_publish" in [t.id for t in templates.templates]
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
