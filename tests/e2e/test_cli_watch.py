"""`attune runs watch` and `attune run` re-attaching, the CLI as a process.

The broken stream is a real one: the CLI talks to the executor through a TCP
proxy that ends the CLI's connection mid-run while keeping its own to the
executor, as a network loss the executor has not noticed would. The run goes
on; the CLI re-attaches with WatchRun through a new connection.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from attune.executor.v1 import executor_pb2
from tests.support.helpers import eventually, run_request, run_to_end
from tests.support.stack import running_stack
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e


def status_of(run: executor_pb2.Run) -> str:
    return executor_pb2.RunStatus.Name(run.status).removeprefix("RUN_STATUS_").lower()


async def attune(address: str, *args: str) -> asyncio.subprocess.Process:
    """The CLI as a process, talking to `address`."""
    env = {**os.environ, "ATTUNE_EXECUTOR_ADDRESS": address, "COLUMNS": "200"}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "executor_service.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_runs_watch_shows_a_finished_run(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        streamed = await run_to_end(stack.executor_stub(), run_request(package_name="demo"))
        run = streamed[-1].run_finished.run
        code, out, err = await finished(
            await attune(stack.executor_address, "runs", "watch", run.run_id)
        )
        assert code == 0, err
        assert f"run {run.run_id}  status={status_of(run)}" in out
        assert f"run files written to {run.run_dir}" in out  # An event's line.
        code, out, err = await finished(
            await attune(stack.executor_address, "runs", "watch", "20260101-000000-" + "0" * 26)
        )
        assert code == 1
        assert "NOT_FOUND" in err


async def test_run_re_attaches_after_its_stream_breaks(tmp_path: Path) -> None:
    async with running_stack(tmp_path, simulated_latency_ms=150.0) as stack:
        assert stack.executor is not None
        proxy = await TcpProxy(stack.executor.port).start()
        try:
            cli = await attune(
                f"127.0.0.1:{proxy.port}",
                "run",
                "python_package_publish",
                "--answer",
                "package_name=demo",
            )
            journal = tmp_path / "executor" / "runs" / ".journal"

            async def started_run_ids() -> list[str]:
                return [entry.name for entry in journal.iterdir()] if journal.is_dir() else []

            run_id = (await eventually(started_run_ids, bool))[0]

            async def forwarded() -> bytes:
                return bytes(proxy.downstream)

            # run_started, the first event naming the run, has reached the CLI.
            await eventually(forwarded, lambda sent: run_id.encode() in sent)
            proxy.cut_clients()
            code, out, err = await finished(cli)
        finally:
            await proxy.close()
        assert code == 0, out + err
        assert f"re-attaching to run {run_id}" in err
        got = await stack.executor_stub().GetRun(executor_pb2.GetRunRequest(run_id=run_id))
        # The run went on while its stream was broken, to its own end.
        assert got.run.status != executor_pb2.RUN_STATUS_CANCELLED
        assert f"run {run_id}  status={status_of(got.run)}" in out
