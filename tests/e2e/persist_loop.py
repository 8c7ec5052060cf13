"""A child process that persists large runs until it is killed.

Used by the SIGKILL atomicity test: it prints one line per persisted run,
so the parent can kill it in the middle of the next write.
"""

from __future__ import annotations

import sys
from pathlib import Path

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.runs.store import RunStore, new_run_id


def main() -> None:
    store = RunStore(Path(sys.argv[1]))
    # A large answer makes each write take long enough to be interrupted.
    bulk = common_pb2.FormValue(string_value="x" * 500_000)
    while True:
        run = executor_pb2.Run(
            run_id=new_run_id(),
            template_id="python_package_publish",
            status=executor_pb2.RUN_STATUS_SUCCEEDED,
            answers={"bulk": bulk},
        )
        store.persist(run, {"run_id": run.run_id})
        print(run.run_id, flush=True)


if __name__ == "__main__":
    main()
