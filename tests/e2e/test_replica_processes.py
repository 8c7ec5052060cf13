"""Two executor processes sharing one runs directory and one memory service, as
replicas behind one Service: each answers for the other's runs, and analytics
count both."""

from __future__ import annotations

from pathlib import Path

from attune.executor.v1 import executor_pb2
from executor_service.dev.stack import ServiceProcess, executor_process, memory_process
from tests.support.helpers import eventually, run_request, run_to_end
from tests.support.process_pair import executor_stub


async def test_each_replica_answers_for_the_others_runs_and_analytics_count_both(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared-runs"  # What a ReadWriteMany volume is to the pods.
    memory = memory_process(tmp_path / "memory")
    started: list[ServiceProcess] = []
    try:
        memory.start()
        for index, name in enumerate(("a", "b")):
            replica = executor_process(
                tmp_path / name,
                memory.address,
                RUNS_DIR=str(shared),
                REPLICA_ID=f"attune-executor-{index}",
            )
            started.append(replica.start())
        async with (
            executor_stub(started[0].address) as a,
            executor_stub(started[1].address) as b,
        ):
            mine = {
                "a": [
                    (await run_to_end(a, run_request(package_name=f"pkg-a{i}")))[
                        -1
                    ].run_finished.run.run_id
                    for i in range(3)
                ],
                "b": [
                    (await run_to_end(b, run_request(package_name=f"pkg-b{i}")))[
                        -1
                    ].run_finished.run.run_id
                    for i in range(2)
                ],
            }
            every = set(mine["a"]) | set(mine["b"])
            for stub, others in ((a, mine["b"]), (b, mine["a"])):
                for run_id in others:
                    found = await stub.GetRun(executor_pb2.GetRunRequest(run_id=run_id), timeout=5)
                    assert found.run.run_id == run_id
                    assert found.run.status in {
                        executor_pb2.RUN_STATUS_SUCCEEDED,
                        executor_pb2.RUN_STATUS_FAILED,
                    }
                listed: set[str] = set()
                token = ""
                while True:  # Paged, two at a time, across both replicas' runs.
                    page = await stub.ListRuns(
                        executor_pb2.ListRunsRequest(page_size=2, page_token=token), timeout=5
                    )
                    listed |= {run.run_id for run in page.runs}
                    if not (token := page.next_page_token):
                        break
                assert listed == every
                # Another replica's runs reach analytics within its catch-up interval.
                analytics = await eventually(
                    lambda stub=stub: stub.GetAnalytics(  # type: ignore[misc]
                        executor_pb2.GetAnalyticsRequest(), timeout=5
                    ),
                    lambda answer: answer.run_count == len(every),
                    within=10,
                )
                assert analytics.run_count == 5
    finally:
        for replica in started:
            replica.kill()
        memory.kill()
