"""RunWorkflow end to end, simulated runner at zero latency, memory store included.

Reported as p50/p95 and as a ratio to a bare gRPC echo measured in the same
run. Target: RunWorkflow p50 at most 10x the echo p50. Two more baselines
explain the figure: a bare server stream with as many messages as a run
sends, and the time of each phase of a run as the client sees it.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import grpc

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.dev.stack import ServiceProcess, executor_process, memory_process
from memory_service.servicekit.tls import ClientTls
from tests.bench.harness import (
    channel,
    echo_samples,
    echo_server,
    mutual_tls,
    report,
    stream_samples,
    summary,
)
from tests.support.fake_llm_server import FakeLLMServer, Scripted, openai_completion
from tests.support.tls_certs import SERVER_NAME

RUNS = int(os.environ.get("BENCH_RUNS", "300"))
ECHOES = int(os.environ.get("BENCH_ECHOES", "2000"))
TARGET_RATIO = 10.0
PHASES = ("run_started", "last_agent", "run_persisted", "run_finished")


def bench_request() -> executor_pb2.RunWorkflowRequest:
    """The run every RunWorkflow benchmark makes: 7 agents, simulated, seeded."""
    return executor_pb2.RunWorkflowRequest(
        template_id="python_package_publish",
        answers={"package_name": common_pb2.FormValue(string_value="bench")},
        seed=1,
    )


async def test_run_workflow_overhead(tmp_path: Path) -> None:
    memory = memory_process(tmp_path, LOG_LEVEL="warning").start()
    executor = executor_process(
        tmp_path, memory.address, LOG_LEVEL="warning", RUNNER="simulated"
    ).start()
    run_times: list[float] = []
    phases: dict[str, list[float]] = {phase: [] for phase in PHASES}
    events_per_run = 0
    try:
        with echo_server(tmp_path) as echo_address:
            echo = summary(await echo_samples(echo_address, ECHOES))
            async with grpc.aio.insecure_channel(executor.address) as channel:
                stub = executor_pb2_grpc.ExecutorServiceStub(channel)
                request = bench_request()
                for index in range(RUNS + 10):
                    started = time.perf_counter()
                    marks: dict[str, float] = {}
                    events = 0
                    async for event in stub.RunWorkflow(request, timeout=30):
                        events += 1
                        kind: str = event.WhichOneof("event") or ""
                        if kind in ("agent_finished", "agent_skipped"):
                            kind = "last_agent"
                        marks[kind] = time.perf_counter() - started
                        if kind == "run_finished":
                            delivery = event.run_finished.run.pattern_delivery
                            assert delivery == executor_pb2.PATTERN_DELIVERY_STORED
                    if index >= 10:  # The first runs warm up.
                        run_times.append(time.perf_counter() - started)
                        for phase in PHASES:
                            phases[phase].append(marks[phase] * 1000)
                        events_per_run = events
            stream = summary(await stream_samples(echo_address, events_per_run, 500))
    finally:
        executor.terminate()
        memory.terminate()
    runs = summary(run_times)
    ratio = runs["p50_ms"] / echo["p50_ms"]
    verdict = f"{ratio:.1f}x (target <= {TARGET_RATIO:g}x: "
    verdict += "met)" if ratio <= TARGET_RATIO else "MISSED)"
    timeline = ", ".join(f"{p} {statistics.median(phases[p]):.2f} ms" for p in PHASES)
    report(
        "bench_run_workflow",
        {
            "bare gRPC echo": echo,
            f"bare server stream of {events_per_run} messages": stream,
            f"RunWorkflow (7 agents, {events_per_run} events, store incl.)": runs,
        },
        {
            "p50 ratio RunWorkflow / echo": verdict,
            "p95 ratio RunWorkflow / echo": f"{runs['p95_ms'] / echo['p95_ms']:.1f}x",
            "p50 ratio RunWorkflow / bare stream": f"{runs['p50_ms'] / stream['p50_ms']:.1f}x",
            "median time to each phase": timeline,
        },
    )


async def run_samples(address: str, count: int, tls: ClientTls | None = None) -> list[float]:
    """Seconds of `count` RunWorkflow calls end to end (after 10 warm-up runs)."""
    times: list[float] = []
    async with channel(address, tls) as open_channel:
        stub = executor_pb2_grpc.ExecutorServiceStub(open_channel)
        request = bench_request()
        for index in range(count + 10):
            started = time.perf_counter()
            async for event in stub.RunWorkflow(request, timeout=30):
                if event.WhichOneof("event") == "run_finished":
                    delivery = event.run_finished.run.pattern_delivery
                    assert delivery == executor_pb2.PATTERN_DELIVERY_STORED
            if index >= 10:
                times.append(time.perf_counter() - started)
    return times


async def test_run_workflow_over_mutual_tls(tmp_path: Path) -> None:
    """RunWorkflow with both hops (client to executor, executor to memory) over
    mutual TLS, and in plaintext, against TLS and plaintext echoes in the same run."""
    pki = mutual_tls(tmp_path)
    ca, server, client, tls, served = pki.ca, pki.server, pki.client, pki.tls, pki.served
    to_memory = {
        "MEMORY_TLS_CA_FILE": str(ca.cert),
        "MEMORY_TLS_CERT_FILE": str(client.cert),
        "MEMORY_TLS_KEY_FILE": str(client.key),
        "MEMORY_TLS_SERVER_NAME": SERVER_NAME,
    }
    rows: dict[str, dict[str, float]] = {}
    with (
        echo_server(tmp_path) as plain_address,
        echo_server(tmp_path, (server.cert, server.key)) as tls_address,
    ):
        plain = rows["bare gRPC echo (plaintext)"] = summary(
            await echo_samples(plain_address, ECHOES)
        )
        echo = rows["bare gRPC echo (TLS)"] = summary(
            await echo_samples(tls_address, ECHOES, tls=tls)
        )
    figures: dict[str, dict[str, float]] = {}
    for label, secure in (("plaintext", False), ("mutual TLS", True)):
        root = tmp_path / label.replace(" ", "-")
        processes: list[ServiceProcess] = []
        try:
            memory = memory_process(root, LOG_LEVEL="warning", settings=served if secure else None)
            memory.tls = tls if secure else None
            processes.append(memory.start())
            # Any: each is an EXECUTOR_* variable, none of executor_process's own arguments.
            extra: dict[str, Any] = {**served, **to_memory} if secure else {}
            executor = executor_process(
                root, memory.address, LOG_LEVEL="warning", RUNNER="simulated", **extra
            )
            executor.tls = tls if secure else None
            processes.append(executor.start())
            samples = await run_samples(executor.address, RUNS, tls if secure else None)
        finally:
            for process in reversed(processes):
                process.terminate()
        figures[label] = rows[f"RunWorkflow, {label} (both hops)"] = summary(samples)
    secured, bare = figures["mutual TLS"], figures["plaintext"]
    report(
        "bench_run_workflow_tls",
        rows,
        {
            "RunWorkflow over mTLS p50 / TLS echo p50": (
                f"{secured['p50_ms'] / echo['p50_ms']:.1f}x"
            ),
            "RunWorkflow over mTLS p50 / plaintext echo p50": (
                f"{secured['p50_ms'] / plain['p50_ms']:.1f}x"
            ),
            "RunWorkflow p50, mTLS / plaintext": f"{secured['p50_ms'] / bare['p50_ms']:.2f}x",
            "TLS echo p50 / plaintext echo p50": f"{echo['p50_ms'] / plain['p50_ms']:.2f}x",
        },
    )


LLM_RUNS = int(os.environ.get("BENCH_LLM_RUNS", "100"))


async def test_run_workflow_openai_overhead(tmp_path: Path) -> None:
    """RunWorkflow on the openai runner against a local fake model API, as a
    ratio to a bare echo in the same run: what building a runner costs a run
    (key file, price table, HTTP client and its connection) shows here, not
    with the simulated runner."""
    key_file = tmp_path / "openai.key"
    key_file.write_text("sk-bench-key\n")
    # Every attempt answers without criteria: the run fails, always the same way.
    answer = json.dumps({"status": "success", "criteria": {}, "summary": "done"})
    with FakeLLMServer() as model_api, echo_server(tmp_path) as echo_address:
        model_api.script(Scripted(body=openai_completion(answer, usage=(1000, 200))))
        echo = summary(await echo_samples(echo_address, ECHOES))
        memory = memory_process(tmp_path, LOG_LEVEL="warning").start()
        executor = executor_process(
            tmp_path,
            memory.address,
            LOG_LEVEL="warning",
            RUNNER="openai",
            OPENAI_API_KEY_FILE=str(key_file),
            OPENAI_BASE_URL=model_api.url,
            LLM_MAX_RETRIES="0",
        )
        try:
            executor.start()
            samples = await run_samples(executor.address, LLM_RUNS)
            calls = len(model_api.requests) // (LLM_RUNS + 10)
        finally:
            executor.terminate()
            memory.terminate()
    runs = summary(samples)
    report(
        "bench_run_workflow_openai",
        {
            "bare gRPC echo": echo,
            f"RunWorkflow, openai runner ({calls} API calls)": runs,
        },
        {
            "p50 ratio RunWorkflow(openai) / echo": f"{runs['p50_ms'] / echo['p50_ms']:.1f}x",
            "p95 ratio RunWorkflow(openai) / echo": f"{runs['p95_ms'] / echo['p95_ms']:.1f}x",
            "p50 per API call": f"{runs['p50_ms'] / max(calls, 1):.3f} ms",
        },
    )
