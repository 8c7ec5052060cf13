"""`make run`: the walking skeleton, end to end, on the embedded store.

Starts the memory service and the executor as processes, runs a workflow,
finds it through the memory service, stops the memory service, finds it
again from the executor's own run files, and stops everything. Exits
non-zero if any step does not behave as promised.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import grpc

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.cli_live import RunProgress
from executor_service.devstack import ServiceProcess, auth_note, executor_process, memory_process

DEMO_DIR = Path(".attune-data/demo")
QUERY = "python package publish"


def say(text: str) -> None:
    """One line of the story."""
    print(text, flush=True)


async def run_workflow(stub: executor_pb2_grpc.ExecutorServiceAsyncStub) -> executor_pb2.Run:
    """Runs python_package_publish, printing progress; returns the run."""
    request = executor_pb2.RunWorkflowRequest(
        template_id="python_package_publish",
        answers={"package_name": common_pb2.FormValue(string_value="attune-demo")},
    )
    progress = RunProgress()  # The CLI's reading of the stream, as plain lines.
    async for event in stub.RunWorkflow(request, timeout=60):
        if line := progress.apply(event):
            say(f"  {line}")
        if event.HasField("run_finished"):
            return event.run_finished.run
    raise RuntimeError("the run stream ended without a run_finished event")


async def search(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub,
    run_id: str,
    expected: executor_pb2.SearchSource.ValueType,
) -> None:
    """Searches, prints the answer, and checks the run was found by `expected`."""
    response = await stub.SearchRuns(executor_pb2.SearchRunsRequest(query=QUERY), timeout=10)
    source = executor_pb2.SearchSource.Name(response.source).removeprefix("SEARCH_SOURCE_")
    say(f"  source={source} degraded={str(response.degraded).lower()} hits={len(response.hits)}")
    if response.degraded_reason:
        say(f"  reason: {response.degraded_reason}")
    for hit in response.hits[:3]:
        say(f"    {hit.run_id}  {hit.template_id}  score={hit.score:.3g}  runner={hit.runner}")
    if response.source != expected or run_id not in {hit.run_id for hit in response.hits}:
        raise RuntimeError(f"expected run {run_id} from {executor_pb2.SearchSource.Name(expected)}")


async def story(executor: ServiceProcess, memory: ServiceProcess) -> None:
    """The demo's steps against running services."""
    async with grpc.aio.insecure_channel(executor.address) as channel:
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        say("\n1. Run a workflow (python_package_publish, package_name=attune-demo)")
        run = await run_workflow(stub)
        status = executor_pb2.RunStatus.Name(run.status).removeprefix("RUN_STATUS_")
        say(f"  run id: {run.run_id}  status={status}  cost=${run.total_cost_usd:.4f}")

        say(f"\n2. Search for {QUERY!r}: answered by the memory service")
        await search(stub, run.run_id, executor_pb2.SEARCH_SOURCE_MEMORY)

        say("\n3. Stop the memory service (SIGTERM)")
        say(f"  memory service exited with code {memory.terminate()}")

        say(f"\n4. Search for {QUERY!r} again: answered from the executor's run files")
        await search(stub, run.run_id, executor_pb2.SEARCH_SOURCE_LOCAL_FILES)


def main() -> int:
    """Runs the demo; 0 when every step behaved."""
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    data_dir = DEMO_DIR.resolve()
    say(f"Attune services demo (data and service logs in {data_dir})")
    with (
        (data_dir / "memory.log").open("w") as memory_log,
        (data_dir / "executor.log").open("w") as executor_log,
    ):
        memory = memory_process(data_dir, log=memory_log)
        executor: ServiceProcess | None = None
        try:
            memory.start()
            say(
                f"  memory service serving on {memory.address} "
                f"(embedded SQLite store; {auth_note(memory)})"
            )
            executor = executor_process(data_dir, memory.address, log=executor_log)
            executor.start()
            say(f"  executor serving on {executor.address}")
            asyncio.run(story(executor, memory))
            say("\n5. Stop the executor (SIGTERM)")
            say(f"  executor exited with code {executor.terminate()}")
        except Exception as error:
            say(f"\ndemo failed: {error}")
            return 1
        finally:
            if executor is not None:
                executor.kill()
            memory.kill()
    say("\nDone: the run was stored, found through memory, and found again from files.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
