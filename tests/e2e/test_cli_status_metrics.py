"""`attune status` with the services' metrics endpoints, against real processes.

The pair runs with its metrics ports on; runs, a call the executor answers
NOT_FOUND, a pattern memory refuses for its secret, and then a memory
outage go through, and `attune status
--executor-metrics URL --memory-metrics URL` must show what happened: runs
by status, calls per method with the NOT_FOUND not counted as a server
error, memory ready, the breaker, and, once memory is gone, the
unreachable endpoint said in a sentence, never a traceback.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner, Result

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.dev.stack import ServiceProcess
from tests.support.cli_runs import invoke
from tests.support.metrics_scrape import pair_with_metrics
from tests.support.process_pair import both_processes
from tests.support.redis_servers import free_port

pytestmark = pytest.mark.e2e

TEMPLATE = "python_package_publish"


@dataclass
class Pair:
    memory: ServiceProcess
    executor: ServiceProcess
    executor_metrics: str
    memory_metrics: str
    statuses: Counter[str]


def row(output: str, label: str, table: str = "metrics") -> str:
    """The rest of the first line starting with `label` (box characters dropped) after
    the first title containing `table` (GetStatus's table has some of the same labels)."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if table in line]
    assert starts, f"no table {table!r} in:\n{output}"
    for line in lines[starts[0] :]:
        cells = [cell.strip() for cell in re.split(r"[│┃|]", line) if cell.strip()]
        if cells and cells[0] == label:
            return " | ".join(cells[1:])
    raise AssertionError(f"no row {label!r} in:\n{output}")


def refuse_a_secret(memory: ServiceProcess) -> None:
    """A pattern holding a GitHub token, stored directly: memory refuses it."""
    token = "ghp_" + "".join(secrets.choice(string.ascii_letters) for _ in range(36))
    pattern = memory_pb2.Pattern(
        id="with-a-secret", type=memory_pb2.PATTERN_TYPE_INSIGHT, content=f"use {token}"
    )
    with memory.channel() as channel:
        stub = memory_pb2_grpc.MemoryServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.StorePattern(
                memory_pb2.StorePatternRequest(namespace="default", pattern=pattern), timeout=5
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Both services with metrics; two runs and one NOT_FOUND made through the CLI."""
    root = tmp_path_factory.mktemp("status-metrics")
    with pair_with_metrics(root) as (memory, executor):
        cli = CliRunner(env={"ATTUNE_EXECUTOR_ADDRESS": executor.address, "COLUMNS": "200"})
        statuses: Counter[str] = Counter()
        for name in ("metricspkg", "otherpkg"):
            args = ("--seed", "7", "--runner", "simulated", "--answer", f"package_name={name}")
            result = invoke(cli, "run", TEMPLATE, "--json", *args)
            assert result.exit_code == 0, result.output
            status = str(json.loads(result.stdout)["status"])
            statuses[status.removeprefix("RUN_STATUS_").lower()] += 1
        # A well-formed id of no run: NOT_FOUND (a malformed one is INVALID_ARGUMENT).
        missing = invoke(cli, "runs", "show", "20000101-000000-" + "0" * 26)
        assert missing.exit_code == 1, missing.output
        refuse_a_secret(memory)
        yield Pair(memory, executor, executor.metrics_url, memory.metrics_url, statuses)


def status(pair: Pair) -> Result:
    cli = CliRunner(
        env={
            "ATTUNE_EXECUTOR_ADDRESS": pair.executor.address,
            "ATTUNE_EXECUTOR_METRICS_URL": pair.executor_metrics,
            "ATTUNE_MEMORY_METRICS_URL": pair.memory_metrics,
            "COLUMNS": "200",
        }
    )
    return invoke(cli, "status")


def test_status_shows_the_pairs_health_from_its_metrics(pair: Pair) -> None:
    result = status(pair)
    assert result.exit_code == 0, result.output
    output = result.stdout
    assert row(output, "circuit breaker") == "closed"
    assert row(output, "memory reachable") == "yes"
    assert row(output, "outbox") == "0 waiting, oldest 0 s"
    assert row(output, "ready") == "yes"
    assert row(output, "encryption key available") == "yes"  # The stack's development key.
    expected_runs = ", ".join(f"{s} {n}" for s, n in sorted(pair.statuses.items()))
    assert row(output, "runs by status (since start)") == expected_runs
    assert row(output, "secrets refused (since start)") == "1 (github_token 1)"
    # Two runs; the NOT_FOUND is the caller's, not a server error.
    assert row(output, "ExecutorService/RunWorkflow") == "2 | 0 (0.0%) | 0 (0.0%)"
    assert row(output, "ExecutorService/GetRun") == "1 | 1 (100.0%) | 0 (0.0%)"
    # The executor's two patterns, and the refused one: the caller's mistake.
    assert row(output, "MemoryService/StorePattern") == "3 | 1 (33.3%) | 0 (0.0%)"
    assert "health: OK" in output


def test_search_p95_comes_from_the_searches_made(pair: Pair) -> None:
    cli = CliRunner(env={"ATTUNE_EXECUTOR_ADDRESS": pair.executor.address, "COLUMNS": "200"})
    assert invoke(cli, "search", "metricspkg").exit_code == 0
    result = status(pair)
    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        r"memory \d+ ms, all \d+ ms", row(result.stdout, "SearchRuns p95 by source")
    )
    assert re.search(r"\ball \d+ ms$", row(result.stdout, "SearchPatterns p95 by mode"))


def test_a_memory_outage_shows_as_problems_and_an_unreachable_endpoint(pair: Pair) -> None:
    # Last in the module: it stops memory.
    pair.memory.terminate()
    with grpc.insecure_channel(pair.executor.address) as channel:
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        deadline = time.monotonic() + 30
        while stub.GetStatus(executor_pb2.GetStatusRequest(), timeout=5).memory_reachable:
            assert time.monotonic() < deadline, "the executor never noticed memory left"
            time.sleep(0.1)  # Polling the executor's own report, within a deadline.
    result = status(pair)
    assert result.exit_code == 1, result.output
    assert row(result.stdout, "memory reachable") == "NO"
    assert "problem: memory unreachable from the executor" in result.stdout
    assert f"memory metrics unreadable: cannot reach {pair.memory_metrics}" in result.stderr
    assert f"unknown: memory metrics at {pair.memory_metrics}" in result.stdout


def test_unreachable_endpoints_are_said_in_a_sentence(tmp_path: Path) -> None:
    """Needs no metrics from the services: the endpoints given are dead ports."""
    with both_processes(tmp_path) as (memory, executor):
        dead = free_port()
        cli = CliRunner(env={"ATTUNE_EXECUTOR_ADDRESS": executor.address, "COLUMNS": "200"})
        given = ("--executor-metrics", f"127.0.0.1:{dead}", "--memory-metrics", "ftp://nowhere")
        result = invoke(cli, "status", *given)
    assert result.exit_code == 1, result.output
    assert f"{memory.address} (reachable)" in result.stdout  # GetStatus is still shown.
    url = f"http://127.0.0.1:{dead}/metrics"
    assert f"executor metrics unreadable: cannot reach {url}" in result.stderr
    assert "memory metrics unreadable: 'ftp://nowhere' is not an http(s) URL" in result.stderr
    assert "unknown: executor metrics at" in result.stdout
    assert "health: OK" not in result.stdout


def test_a_dead_executor_and_dead_endpoints_are_each_reported() -> None:
    dead = free_port()
    cli = CliRunner(env={"ATTUNE_EXECUTOR_ADDRESS": f"127.0.0.1:{dead}", "COLUMNS": "200"})
    result = invoke(cli, "status", "--timeout", "1", "--executor-metrics", f"127.0.0.1:{dead}")
    assert result.exit_code == 1, result.output
    assert f"the executor is unreachable at 127.0.0.1:{dead}" in result.stderr
    assert "executor metrics unreadable: cannot reach" in result.stderr
