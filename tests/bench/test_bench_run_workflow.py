"""RunWorkflow end to end, simulated runner at zero latency, memory store included.

Reported as p50/p95 and as a ratio to a bare gRPC echo measured in the same
run. Target: RunWorkflow p50 at most 10x the echo p50.
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.devstack import executor_process, memory_process
from tests.bench.harness import echo_samples, echo_server, report, summary, time_calls

RUNS = int(os.environ.get("BENCH_RUNS", "300"))
ECHOES = int(os.environ.get("BENCH_ECHOES", "2000"))
TARGET_RATIO = 10.0


async def test_run_workflow_overhead(tmp_path: Path) -> None:
    memory = memory_process(tmp_path, LOG_LEVEL="warning").start()
    executor = executor_process(
        tmp_path, memory.address, LOG_LEVEL="warning", RUNNER="simulated"
    ).start()
    try:
        with echo_server(tmp_path) as echo_address:
            echo = summary(await echo_samples(echo_address, ECHOES))
            async with grpc.aio.insecure_channel(executor.address) as channel:
                stub = executor_pb2_grpc.ExecutorServiceStub(channel)
                request = executor_pb2.RunWorkflowRequest(
                    template_id="python_package_publish",
                    answers={"package_name": common_pb2.FormValue(string_value="bench")},
                    seed=1,
                )

                async def run_once() -> None:
                    last = None
                    async for event in stub.RunWorkflow(request, timeout=30):
                        last = event
                    assert last is not None
                    assert last.run_finished.run.pattern_delivery == (
                        executor_pb2.PATTERN_DELIVERY_STORED
                    )

                runs = summary(await time_calls(run_once, RUNS, warmup=10))
    finally:
        executor.terminate()
        memory.terminate()
    ratio = runs["p50_ms"] / echo["p50_ms"]
    verdict = f"{ratio:.1f}x (target <= {TARGET_RATIO:g}x: "
    verdict += "met)" if ratio <= TARGET_RATIO else "MISSED)"
    report(
        "bench_run_workflow",
        {"bare gRPC echo": echo, "RunWorkflow (7 agents, store incl.)": runs},
        {
            "p50 ratio RunWorkflow / echo": verdict,
            "p95 ratio RunWorkflow / echo": f"{runs['p95_ms'] / echo['p95_ms']:.1f}x",
        },
    )
