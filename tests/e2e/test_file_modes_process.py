"""The services as processes keep their files owner-only (issue 10, finding 14):
each sets its umask to 077 at start, whatever it inherited."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from attune.executor.v1 import executor_pb2_grpc
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.dev.stack import ServiceProcess, executor_process, memory_process
from tests.support.helpers import loose_modes, run_request

pytestmark = pytest.mark.e2e


def process_umask(process: ServiceProcess) -> int:
    assert process.process is not None
    status = Path(f"/proc/{process.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("Umask:"))
    return int(line.split()[1], 8)


@pytest.mark.usefixtures("common_umask")  # what the children inherit
def test_both_processes_set_an_owner_only_umask_and_write_owner_only_files(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with (
        (tmp_path / "memory.log").open("w") as memory_log,
        (tmp_path / "executor.log").open("w") as executor_log,
    ):
        memory = memory_process(data, log=memory_log)
        executor: ServiceProcess | None = None
        try:
            memory.start()
            executor = executor_process(data, memory.address, log=executor_log).start()
            assert process_umask(memory) == 0o077
            assert process_umask(executor) == 0o077
            with grpc.insecure_channel(executor.address) as channel:
                stub = executor_pb2_grpc.ExecutorServiceStub(channel)
                events = list(
                    stub.RunWorkflow(run_request(package_name="demo, dave@example.com"), timeout=30)
                )
                assert events[-1].HasField("run_finished")
            with grpc.insecure_channel(memory.address) as channel:
                memory_pb2_grpc.MemoryServiceStub(channel).SetContext(
                    memory_pb2.SetContextRequest(
                        namespace="default", session_id="s", key="k", value="erin@example.com"
                    ),
                    timeout=5,
                )
            assert executor.terminate() == 0
            assert memory.terminate() == 0
        finally:
            if executor is not None:
                executor.kill()
            memory.kill()
    written = {path.name for path in data.rglob("*")}
    assert {"patterns.sqlite3", "audit.log", "result.json", "open.sqlite3"} <= written
    assert loose_modes(data) == []
