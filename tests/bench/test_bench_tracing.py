"""The overhead of observability (issue 16): RunWorkflow and StorePattern with
tracing and metrics ON vs OFF, measured in the same run.

Three pairs of processes serve at once, each configured as one of:
- off: OTEL_SDK_DISABLED=true, no metrics port: no spans at all;
- default: nothing set (what a deployment gets): spans recorded for the log
  lines' trace ids, exported nowhere; no metrics port;
- on: spans exported by OTLP to the stand-in receiver (in this process), and
  both metrics ports served.
Rounds interleave the three, so drift on a shared machine hits each alike.
Reported: p50/p95 per configuration and the p50 ratios to `off` (budget: on
at most +10%). The samples go to the pairs one call at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.dev.stack import ServiceProcess, executor_process, memory_process
from tests.bench.harness import report, summary, time_calls
from tests.bench.search_corpus import variants
from tests.bench.test_bench_run_workflow import bench_request
from tests.support.otlp_receiver import OtlpReceiver

ROUNDS = int(os.environ.get("BENCH_TRACING_ROUNDS", "6"))
RUNS_PER_ROUND = int(os.environ.get("BENCH_TRACING_RUNS", "40"))
STORES_PER_ROUND = int(os.environ.get("BENCH_TRACING_STORES", "200"))
BUDGET = 1.10
CONFIGS = ("off", "default", "on")


@dataclass
class Pair:
    """One configuration's services and its samples (seconds)."""

    name: str
    memory: ServiceProcess
    executor: ServiceProcess
    runs: list[float] = field(default_factory=list)
    stores: list[float] = field(default_factory=list)


def environment(config: str, endpoint: str) -> dict[str, str]:
    """The processes' environment for a configuration."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if config == "off":
        return {**base, "OTEL_SDK_DISABLED": "true"}
    if config == "on":
        return {**base, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
    return base


@contextmanager
def pairs(root: Path, endpoint: str) -> Iterator[dict[str, Pair]]:
    """The three configurations' pairs, started; killed at the end."""
    with ExitStack() as stack:
        started: dict[str, Pair] = {}
        for config in CONFIGS:
            folder = root / config
            env = environment(config, endpoint)
            metrics = {"METRICS_PORT": "0"} if config == "on" else {}
            memory = memory_process(folder, environment=env, settings=metrics, LOG_LEVEL="warning")
            stack.callback(memory.kill)
            memory.start()
            executor = executor_process(
                folder,
                memory.address,
                environment=env,
                settings=metrics,
                LOG_LEVEL="warning",
                RUNNER="simulated",
            )
            stack.callback(executor.kill)
            executor.start()
            started[config] = Pair(config, memory, executor)
        yield started
        for pair in started.values():  # Graceful: the `on` pairs flush their spans.
            pair.executor.terminate()
            pair.memory.terminate()


async def measure_round(pair: Pair, first: int, warmup: int) -> None:
    """One round of runs and stores against a pair, appended to its samples."""
    async with (
        grpc.aio.insecure_channel(pair.executor.address) as executor_channel,
        grpc.aio.insecure_channel(pair.memory.address) as memory_channel,
    ):
        runs = executor_pb2_grpc.ExecutorServiceStub(executor_channel)
        memory = memory_pb2_grpc.MemoryServiceStub(memory_channel)
        request = bench_request()

        async def run() -> None:
            async for event in runs.RunWorkflow(request, timeout=30):
                if event.WhichOneof("event") == "run_finished":
                    delivery = event.run_finished.run.pattern_delivery
                    assert delivery == executor_pb2.PATTERN_DELIVERY_STORED

        patterns = iter(variants(STORES_PER_ROUND + warmup, start=first))

        async def store() -> None:
            write = memory_pb2.StorePatternRequest(namespace="bench", pattern=next(patterns))
            await memory.StorePattern(write, timeout=10)

        pair.runs += await time_calls(run, RUNS_PER_ROUND, warmup=min(warmup, 5))
        pair.stores += await time_calls(store, STORES_PER_ROUND, warmup=warmup)


async def test_tracing_and_metrics_overhead(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver, pairs(tmp_path, receiver.endpoint) as running:
        for number in range(ROUNDS):
            # Rotated order: no configuration always goes first in a round.
            order = CONFIGS[number % 3 :] + CONFIGS[: number % 3]
            for config in order:
                first = number * (STORES_PER_ROUND + 20)
                await measure_round(running[config], first, warmup=20 if number == 0 else 0)
    exported = {span.service for span in receiver.spans()}
    assert exported == {"attune-executor", "attune-memory"}, exported  # `on` really exported.
    figures = {
        config: (summary(running[config].runs), summary(running[config].stores))
        for config in CONFIGS
    }
    off_runs, off_stores = figures["off"]
    rows: dict[str, dict[str, float]] = {}
    verdicts: dict[str, str] = {}
    for config in CONFIGS:
        runs, stores = figures[config]
        rows[f"RunWorkflow, {config}"] = runs
        rows[f"StorePattern, {config}"] = stores
        if config == "off":
            continue
        for label, mine, base in (
            ("RunWorkflow", runs, off_runs),
            ("StorePattern", stores, off_stores),
        ):
            ratio = mine["p50_ms"] / base["p50_ms"]
            verdict = f"{ratio:.3f}x"
            if config == "on":
                verdict += f" (budget <= {BUDGET:g}x: " + ("met)" if ratio <= BUDGET else "MISSED)")
            verdicts[f"{label} p50 {config} / off"] = verdict
            verdicts[f"{label} p95 {config} / off"] = f"{mine['p95_ms'] / base['p95_ms']:.3f}x"
    verdicts["spans received by the stand-in collector"] = str(len(receiver.spans()))
    report("bench_tracing", rows, verdicts)
