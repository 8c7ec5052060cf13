"""Both services as processes with metrics ports, scraped after a scripted
workload (issue 16's test): runs on fixed seeds, a secret refused, a memory
outage that queues patterns, the memory service back and the outbox drained.

Every counter is compared with what the workload did, as the returned runs
and answers tell it; the outbox gauge must rise during the outage and fall
back to zero. A process without a metrics port opens no second port.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO

import grpc
import pytest

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.convert.enums import RUNNER_NAMES, tier_name
from executor_service.dev.stack import ServiceProcess, executor_process, memory_process
from executor_service.metrics import RUN_STATUSES
from memory_service.security.secrets import find_secrets
from tests.support.helpers import code_of, eventually, run_request
from tests.support.listening import listening_ports
from tests.support.metrics_contract import EXECUTOR, MEMORY
from tests.support.process_pair import executor_stub
from tests.support.scrape import Scrape, missing, scrape

pytestmark = pytest.mark.e2e

EXECUTOR_SERVICE = "attune.executor.v1.ExecutorService"
MEMORY_SERVICE = "attune.memory.v1.MemoryService"
SECRET = memory_pb2.StorePatternRequest(
    namespace="secrets",
    pattern=memory_pb2.Pattern(
        id="leaky", type=memory_pb2.PATTERN_TYPE_INSIGHT, content="key AKIAZ7Q4M2W8R5T1Y6UX here"
    ),
)
BEFORE_OUTAGE = range(1, 5)  # Seeds of the runs while the memory service is up.
DURING_OUTAGE = range(5, 8)  # Seeds of the runs while it is down.


@contextmanager
def logs(root: Path) -> Iterator[Callable[[str], IO[str]]]:
    """Opens a log file per started process, closed at the end."""
    with ExitStack() as stack:
        yield lambda name: stack.enter_context((root / f"{name}.log").open("a"))


@asynccontextmanager
async def pair(root: Path, **metrics: str) -> AsyncIterator[tuple[ServiceProcess, ServiceProcess]]:
    """Both services as processes; `metrics` are settings of both (METRICS_PORT)."""
    with logs(root) as log:
        memory = memory_process(root, log=log("memory"), settings=metrics)
        executor: ServiceProcess | None = None
        try:
            await asyncio.to_thread(memory.start)
            executor = executor_process(
                root,
                memory.address,
                log=log("executor"),
                settings=metrics,
                RUNNER="simulated",
                READINESS_INTERVAL_SECONDS="0.1",
                OUTBOX_REPLAY_INTERVAL_SECONDS="0.2",
                OUTBOX_REPLAY_MAX_INTERVAL_SECONDS="1",
                BREAKER_RESET_SECONDS="0.5",
            )
            await asyncio.to_thread(executor.start)
            yield memory, executor
        finally:
            if executor is not None:
                await asyncio.to_thread(executor.kill)
            await asyncio.to_thread(memory.kill)


async def run_seeded(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, seed: int
) -> executor_pb2.Run:
    request = run_request(package_name=f"metered-{seed}")
    request.seed = seed
    events = [event async for event in stub.RunWorkflow(request, timeout=30)]
    assert events[-1].HasField("run_finished"), events[-1]
    return events[-1].run_finished.run


async def search(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub,
) -> executor_pb2.SearchRunsResponse:
    request = executor_pb2.SearchRunsRequest(query="metered")
    response: executor_pb2.SearchRunsResponse = await stub.SearchRuns(request, timeout=10)
    return response


async def until(url: str, accept: Callable[[Scrape], bool], within: float = 30.0) -> Scrape:
    """Scrapes until `accept` holds (the services change on their own schedule)."""

    async def probe() -> Scrape:
        return await scrape(url)

    return await eventually(probe, accept, within=within, interval=0.05)


def rpc(service: str, method: str, grpc_type: str = "unary") -> dict[str, str]:
    return {"grpc_service": service, "grpc_method": method, "grpc_type": grpc_type}


def handled(scraped: Scrape, labels: dict[str, str], code: str) -> float:
    return scraped.value("grpc_server_handled_total", **labels, grpc_code=code)


@pytest.mark.timeout(120)
async def test_scraped_counts_match_a_workload_with_an_outage_and_a_secret(
    tmp_path: Path,
) -> None:
    async with pair(tmp_path, METRICS_PORT="0") as (memory, executor):
        executor_url, memory_url = executor.metrics_url, memory.metrics_url
        # Each process listens on its gRPC port and its metrics port, nothing else.
        for process in (memory, executor):
            assert process.process is not None
            ports = listening_ports(process.process.pid)
            assert ports == {process.port, process.metrics_port}

        # A fresh process lists every contract family, children or not.
        fresh_executor, fresh_memory = await scrape(executor_url), await scrape(memory_url)
        assert missing(EXECUTOR, fresh_executor) == set()
        assert missing(MEMORY, fresh_memory) == set()
        assert {name: fresh_executor.families[name] for name in EXECUTOR} == {
            name: kind for name, (kind, _) in EXECUTOR.items()
        }
        assert {name: fresh_memory.families[name] for name in MEMORY} == {
            name: kind for name, (kind, _) in MEMORY.items()
        }
        assert fresh_executor.total("attune_executor_runs_total") == 0

        runs: list[executor_pb2.Run] = []
        async with executor_stub(executor.address) as stub:
            # The memory service is up: every run's pattern is stored at once.
            for seed in BEFORE_OUTAGE:
                runs.append(await run_seeded(stub, seed))
            assert (await search(stub)).source == executor_pb2.SEARCH_SOURCE_MEMORY
            async with grpc.aio.insecure_channel(memory.address) as channel:
                refused = memory_pb2_grpc.MemoryServiceStub(channel).StorePattern(SECRET, timeout=5)
                assert await code_of(refused) == grpc.StatusCode.INVALID_ARGUMENT

            first_life = await scrape(memory_url)  # Its counters go with the process.
            assert await asyncio.to_thread(memory.terminate) == 0

            # The outage: runs still finish, their patterns wait in the outbox.
            for seed in DURING_OUTAGE:
                runs.append(await run_seeded(stub, seed))
            outage = await until(
                executor_url, lambda s: s.value("attune_executor_memory_reachable") == 0
            )
            degraded = await search(stub)
            assert degraded.degraded
            assert degraded.source == executor_pb2.SEARCH_SOURCE_LOCAL_FILES

            await asyncio.to_thread(memory.restart)
            drained = await until(
                executor_url,
                lambda s: (
                    s.value("attune_executor_outbox_depth") == 0
                    and s.value("attune_executor_breaker_state") == 0
                    and s.value("attune_executor_memory_reachable") == 1
                ),
            )
        second_life = await scrape(memory_url)

    delivered = Counter(executor_pb2.PatternDelivery.Name(run.pattern_delivery) for run in runs)
    stored_at_once = [r for r in runs if r.pattern_delivery == executor_pb2.PATTERN_DELIVERY_STORED]
    queued = [r for r in runs if r.pattern_delivery == executor_pb2.PATTERN_DELIVERY_QUEUED]
    assert len(stored_at_once) == len(BEFORE_OUTAGE), delivered
    assert len(queued) == len(DURING_OUTAGE), delivered

    # The outbox rose with the outage, and is empty again.
    assert outage.value("attune_executor_outbox_depth") == len(queued) > 0
    assert outage.value("attune_executor_outbox_oldest_age_seconds") > 0
    assert drained.value("attune_executor_outbox_oldest_age_seconds") == 0

    # Runs by template, status and runner; attempts by tier and outcome; cost.
    by_run = Counter(
        (run.template_id, RUN_STATUSES[run.status], RUNNER_NAMES[run.runner]) for run in runs
    )
    for (template_id, status, runner), count in by_run.items():
        labels = {"template_id": template_id, "status": status, "runner": runner}
        assert drained.value("attune_executor_runs_total", **labels) == count, labels
    assert drained.total("attune_executor_runs_total") == len(runs)
    attempts = Counter(
        (tier_name(attempt.tier), "succeeded" if attempt.success else "failed")
        for run in runs
        for agent in run.agents
        for attempt in agent.attempts
    )
    for tier in ("cheap", "capable", "premium"):
        for outcome in ("succeeded", "failed"):
            found = drained.value(
                "attune_executor_agent_attempts_total", tier=tier, outcome=outcome
            )
            assert found == attempts[tier, outcome], (tier, outcome)
    template = {"template_id": "python_package_publish"}
    assert drained.value("attune_executor_run_cost_usd_count", **template) == len(runs)
    assert math.isclose(
        drained.value("attune_executor_run_cost_usd_sum", **template),
        sum(run.total_cost_usd for run in runs),
        rel_tol=1e-9,
    )

    # Deliveries: stored at once before the outage, queued then replayed.
    deliveries = "attune_executor_pattern_deliveries_total"
    assert drained.value(deliveries, outcome="stored") == len(stored_at_once)
    assert drained.value(deliveries, outcome="queued") == len(queued)
    assert drained.value(deliveries, outcome="replayed") == len(queued)
    assert drained.total(deliveries) == len(runs) + len(queued)

    # Searches: one answered by memory, one degraded to the run files.
    searches = "attune_executor_search_seconds_count"
    assert drained.value(searches, mode="auto", source="memory") == 1
    assert drained.value(searches, mode="auto", source="local_files") == 1
    assert drained.value("attune_executor_searches_degraded_total", source="local_files") == 1

    # The executor's RPCs by method and code.
    run_workflow = rpc(EXECUTOR_SERVICE, "RunWorkflow", "server_stream")
    assert drained.value("grpc_server_started_total", **run_workflow) == len(runs)
    assert handled(drained, run_workflow, "OK") == len(runs)
    assert drained.total("grpc_server_handled_total", **run_workflow) == len(runs)
    assert handled(drained, rpc(EXECUTOR_SERVICE, "SearchRuns"), "OK") == 2
    assert drained.value("grpc_server_handling_seconds_count", **run_workflow) == len(runs)
    in_flight = {"grpc_service": EXECUTOR_SERVICE, "grpc_method": "RunWorkflow"}
    assert drained.value("grpc_server_in_flight_requests", **in_flight) == 0

    # The memory service before the outage: the runs' patterns, the secret, one search.
    store = rpc(MEMORY_SERVICE, "StorePattern")
    assert handled(first_life, store, "OK") == len(stored_at_once)
    assert handled(first_life, store, "INVALID_ARGUMENT") == 1
    assert first_life.total("grpc_server_handled_total", **store) == len(stored_at_once) + 1
    assert first_life.total("attune_memory_patterns_stored_total") == len(stored_at_once)
    assert first_life.value("attune_memory_patterns_deduped_total") == 0
    assert first_life.value("attune_memory_patterns_rejected_total", reason="secret") == 1
    assert first_life.total("attune_memory_patterns_rejected_total") == 1
    kinds = {finding.kind for finding in find_secrets(SECRET.pattern)}
    assert kinds == {"aws_access_key"}
    assert first_life.value("attune_memory_secrets_refused_total", kind="aws_access_key") == 1
    assert first_life.total("attune_memory_secrets_refused_total") == 1
    assert handled(first_life, rpc(MEMORY_SERVICE, "SearchPatterns"), "OK") == 1
    keyword = {"mode": "keyword", "source": "embedded"}
    assert first_life.value("attune_memory_search_seconds_count", **keyword) == 1
    assert first_life.value("attune_memory_ready") == 1
    assert first_life.value("attune_memory_encryption_key_available") == 1

    # After the restart: the queued patterns, replayed once each.
    assert handled(second_life, store, "OK") == len(queued)
    assert second_life.total("grpc_server_handled_total", **store) == len(queued)
    assert second_life.total("attune_memory_patterns_stored_total") == len(queued)
    assert second_life.value("attune_memory_patterns_deduped_total") == 0
    assert second_life.total("attune_memory_patterns_rejected_total") == 0
    assert second_life.value("attune_memory_ready") == 1


@pytest.mark.timeout(60)
async def test_without_a_metrics_port_no_endpoint_is_opened(tmp_path: Path) -> None:
    async with pair(tmp_path) as (memory, executor):
        for process in (memory, executor):
            assert process.process is not None
            assert process.metrics_port == 0
            assert not process.metrics_port_file.exists()
            assert listening_ports(process.process.pid) == {process.port}
        with pytest.raises(RuntimeError, match="METRICS_PORT"):
            _ = executor.metrics_url
