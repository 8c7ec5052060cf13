"""A memory service and an executor as processes, for tests that drive the pair."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from executor_service.dev.stack import ServiceProcess, executor_process, memory_process


@contextmanager
def process_pair(root: Path, **executor_settings: Any) -> Iterator[ServiceProcess]:
    """Both services on free ports, logging under `root`; yields the executor,
    started with `executor_settings` (executor_process's keyword arguments)."""
    with (
        (root / "memory.log").open("w") as memory_log,
        (root / "executor.log").open("w") as executor_log,
    ):
        memory = memory_process(root, log=memory_log)
        running: ServiceProcess | None = None
        try:
            memory.start()
            running = executor_process(
                root, memory.address, log=executor_log, **executor_settings
            ).start()
            yield running
        finally:
            if running is not None:
                running.kill()
            memory.kill()
