"""`make run`: the whole story of the pair, on the embedded store.

Starts the memory service and the executor as processes and then, step by
step: runs workflows of several templates; answers a natural-language
search from the memory service; stops the memory service and shows a run
still succeeds (its pattern queued) and search answering from the run
files; restarts the memory service and watches the outbox drain; prints
analytics and recommendations learned from the runs. Exits non-zero if any
step does not behave as promised.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

import grpc
from rich.console import Console

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.cli.live import RunProgress
from executor_service.cli.render_insights import (
    print_analytics,
    print_recommendations,
    print_search,
)
from executor_service.dev.stack import ServiceProcess, auth_note, executor_process, memory_process
from memory_service.servicekit.private_files import private_dir, private_opener, restrict_umask

DEMO_DIR = Path(".attune-data/demo")
QUERY = "successful python package runs with test coverage above 80%"
SESSION = "demo-session"
# The simulated runner's seeds: the demo tells the same story every time (run n uses
# DEMO_SEED + n), so the runs its search should find always exist.
DEMO_SEED = 100

# (template, answers) of the history the demo builds: three templates.
HISTORY: list[tuple[str, dict[str, common_pb2.FormValue]]] = [
    *(
        (
            "python_package_publish",
            {
                "package_name": common_pb2.FormValue(string_value=f"attune-demo-{n}"),
                "test_coverage_required": common_pb2.FormValue(number_value=coverage),
            },
        )
        for n, coverage in enumerate((90, 85, 70, 95, 60, 88))
    ),
    *(
        (
            "code_review",
            {"pull_request_url": common_pb2.FormValue(string_value=f"https://example.com/pr/{n}")},
        )
        for n in range(4)
    ),
    *(
        (
            "test_coverage_boost",
            {"target_path": common_pb2.FormValue(string_value=f"src/module_{n}")},
        )
        for n in range(4)
    ),
]


def say(text: str) -> None:
    """One line of the story."""
    print(text, flush=True)


async def run_workflow(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub,
    template_id: str,
    answers: dict[str, common_pb2.FormValue],
    seed: int,
    verbose: bool,
) -> executor_pb2.Run:
    """Runs one workflow (printing its progress if verbose); returns the run."""
    request = executor_pb2.RunWorkflowRequest(
        template_id=template_id, answers=answers, session_id=SESSION, seed=seed
    )
    progress = RunProgress()  # The CLI's reading of the stream, as plain lines.
    async for event in stub.RunWorkflow(request, timeout=60):
        if verbose and (line := progress.apply(event)):
            say(f"  {line}")
        if event.HasField("run_finished"):
            return event.run_finished.run
    raise RuntimeError("the run stream ended without a run_finished event")


def delivery(run: executor_pb2.Run) -> str:
    return executor_pb2.PatternDelivery.Name(run.pattern_delivery).removeprefix("PATTERN_DELIVERY_")


async def search(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub,
    console: Console,
    run_ids: set[str],
    expected: executor_pb2.SearchSource.ValueType,
) -> None:
    """Searches, prints the answer, and checks a run of `run_ids` was found by `expected`."""
    response = await stub.SearchRuns(executor_pb2.SearchRunsRequest(query=QUERY), timeout=10)
    print_search(console, QUERY, response, explain=False)
    if response.source != expected:
        raise RuntimeError(f"expected the answer from {executor_pb2.SearchSource.Name(expected)}")
    if not run_ids & {hit.run_id for hit in response.hits}:
        raise RuntimeError("the search did not find the runs it should")


async def drained(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, within: float
) -> executor_pb2.GetStatusResponse:
    """GetStatus once the outbox is empty; RuntimeError after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        status = await stub.GetStatus(executor_pb2.GetStatusRequest(), timeout=5)
        if status.outbox_depth == 0:
            return status
        if time.monotonic() > deadline:
            raise RuntimeError(f"the outbox still holds {status.outbox_depth} patterns")
        await asyncio.sleep(0.1)  # Polling an observable state, with a deadline.


async def story(executor: ServiceProcess, memory: ServiceProcess, data_dir: Path) -> None:
    """The demo's steps against running services."""
    console = Console(markup=False, highlight=False, width=160)
    async with grpc.aio.insecure_channel(executor.address) as channel:
        stub: executor_pb2_grpc.ExecutorServiceAsyncStub = executor_pb2_grpc.ExecutorServiceStub(
            channel
        )
        say(f"\n1. Run {len(HISTORY)} workflows of three templates (the first one in full)")
        runs = []
        for index, (template_id, answers) in enumerate(HISTORY):
            run = await run_workflow(
                stub, template_id, answers, seed=DEMO_SEED + index, verbose=index == 0
            )
            runs.append(run)
            status = executor_pb2.RunStatus.Name(run.status).removeprefix("RUN_STATUS_")
            say(
                f"  {run.run_id}  {template_id:<22} {status:<9} ${run.total_cost_usd:.4f}  "
                f"pattern {delivery(run)}"
            )
        publishes = {
            run.run_id
            for run, (template_id, answers) in zip(runs, HISTORY, strict=True)
            if template_id == "python_package_publish"
            and run.status == executor_pb2.RUN_STATUS_SUCCEEDED
            and answers["test_coverage_required"].number_value > 80
        }
        if not publishes:
            raise RuntimeError(f"no run matches {QUERY!r}: the demo's seeds no longer fit it")

        say(f"\n2. Search {QUERY!r}: the memory service answers, and shows how it read it")
        await search(stub, console, publishes, executor_pb2.SEARCH_SOURCE_MEMORY)

        say("\n3. Stop the memory service (SIGTERM)")
        say(f"  memory service exited with code {memory.terminate()}")

        say(
            "\n4. A run still completes (its outcome is the agents'); "
            "its pattern waits in the outbox"
        )
        template_id, answers = HISTORY[0]
        late = await run_workflow(
            stub, template_id, answers, seed=DEMO_SEED + len(HISTORY), verbose=False
        )
        status = executor_pb2.RunStatus.Name(late.status).removeprefix("RUN_STATUS_")
        say(f"  {late.run_id}  {status}  pattern {delivery(late)}")
        if late.pattern_delivery != executor_pb2.PATTERN_DELIVERY_QUEUED:
            raise RuntimeError("with the memory service down the pattern should be queued")
        before = await stub.GetStatus(executor_pb2.GetStatusRequest(), timeout=5)
        say(f"  outbox: {before.outbox_depth} queued; memory reachable: {before.memory_reachable}")

        say("\n5. The same search, answered from the executor's run files")
        await search(stub, console, publishes, executor_pb2.SEARCH_SOURCE_LOCAL_FILES)

        say("\n6. Restart the memory service on the same port: the outbox drains")
        restarted = memory.restart()
        say(f"  memory service serving again on {restarted.address}")
        after = await drained(stub, within=60)
        say(f"  outbox: {after.outbox_depth} queued; memory reachable: {after.memory_reachable}")

        say("\n7. Analytics over the history")
        analytics = await stub.GetAnalytics(executor_pb2.GetAnalyticsRequest(), timeout=10)
        print_analytics(console, "", analytics)
        if analytics.run_count != len(runs) + 1:
            raise RuntimeError(f"analytics counted {analytics.run_count} runs")

        say("\n8. Recommendations for the next python_package_publish run")
        recommendations = await stub.GetRecommendations(
            executor_pb2.GetRecommendationsRequest(
                template_id="python_package_publish",
                answers={"package_name": common_pb2.FormValue(string_value="attune-next")},
                session_id=SESSION,
            ),
            timeout=10,
        )
        print_recommendations(console, "python_package_publish", recommendations)
        if not recommendations.tiers:
            raise RuntimeError("no tier recommendation came back")


def main() -> int:
    """Runs the demo; 0 when every step behaved."""
    restrict_umask()  # The children inherit it; they also set it themselves.
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    data_dir = private_dir(DEMO_DIR.resolve())
    say(f"Attune services demo (data and service logs in {data_dir})")
    with (
        open(data_dir / "memory.log", "w", opener=private_opener) as memory_log,
        open(data_dir / "executor.log", "w", opener=private_opener) as executor_log,
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
            say(f"  executor serving on {executor.address} ({auth_note(executor)})")
            asyncio.run(story(executor, memory, data_dir))
            say("\n9. Stop the executor (SIGTERM)")
            say(f"  executor exited with code {executor.terminate()}")
        except Exception as error:
            say(f"\ndemo failed: {error}")
            return 1
        finally:
            if executor is not None:
                executor.kill()
            memory.kill()
    say(
        "\nDone: runs stored and found through memory; with memory down a run still "
        "completed and search answered from files; the outbox drained once memory was "
        "back; analytics and recommendations came from the history."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
