"""The outbox: patterns durably queued until the memory service has them.

A pattern is written (fsynced, renamed into place) before its run is
reported finished, and removed only once the memory service acknowledged
it. Entries are named by run id, so replay follows run order.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from attune.memory.v1 import memory_pb2

_SUFFIX = ".pattern.pb"


class Outbox:
    """A folder of queued patterns, oldest first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, pattern_id: str) -> Path:
        return self.root / f"{pattern_id}{_SUFFIX}"

    def put(self, pattern: memory_pb2.Pattern) -> None:
        """Queues the pattern durably."""
        final = self._path(pattern.id)
        temporary = final.with_name(f".{final.name}.tmp")
        with temporary.open("wb") as handle:
            handle.write(pattern.SerializeToString(deterministic=True))
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temporary, final)
        descriptor = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def remove(self, pattern_id: str) -> None:
        """Drops an acknowledged pattern."""
        self._path(pattern_id).unlink(missing_ok=True)

    def pending(self) -> list[memory_pb2.Pattern]:
        """The queued patterns, oldest first."""
        return [
            memory_pb2.Pattern.FromString(path.read_bytes())
            for path in sorted(self.root.glob(f"*{_SUFFIX}"))
        ]

    def depth(self) -> int:
        """How many patterns wait."""
        return sum(1 for _ in self.root.glob(f"*{_SUFFIX}"))

    def oldest_age_seconds(self) -> float | None:
        """How long the oldest entry has waited; None when empty."""
        times = [path.stat().st_mtime for path in self.root.glob(f"*{_SUFFIX}")]
        return time.time() - min(times) if times else None
