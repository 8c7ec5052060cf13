"""The outbox: run patterns waiting for the memory service, inside their runs.

A run's pattern is written into the run directory (`pattern.pending.pb`) by
the same atomic write as the run itself, so a run is never on disk without
its queued pattern. The marker is removed only once the memory service has
acknowledged the pattern; a pattern the memory service refuses for good is
renamed `pattern.rejected.pb` and kept for inspection. Replay goes in run id
order, which is creation order.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from attune.memory.v1 import memory_pb2

PENDING = "pattern.pending.pb"
REJECTED = "pattern.rejected.pb"


class Outbox:
    """The pending markers under a runs directory, tracked in memory too."""

    def __init__(self, runs_root: Path) -> None:
        self.root = runs_root
        self._lock = threading.Lock()
        # run id -> when it was queued (the marker's mtime after a restart).
        self._queued: dict[str, float] = {}
        for marker in runs_root.glob(f"*/{PENDING}"):
            self._queued[marker.parent.name] = marker.stat().st_mtime

    @staticmethod
    def staged_file(pattern: memory_pb2.Pattern) -> tuple[str, bytes]:
        """The marker to write into the run directory with the run."""
        return PENDING, pattern.SerializeToString(deterministic=True)

    def queued(self, pattern_id: str) -> None:
        """Records a pattern whose run (with its marker) is now on disk."""
        with self._lock:
            self._queued[pattern_id] = time.time()

    def is_queued(self, pattern_id: str) -> bool:
        """Whether the pattern still waits."""
        with self._lock:
            return pattern_id in self._queued

    def remove(self, pattern_id: str) -> None:
        """Drops an acknowledged pattern. A crash before the unlink only means
        a replay, which the memory service dedupes."""
        (self.root / pattern_id / PENDING).unlink(missing_ok=True)
        with self._lock:
            self._queued.pop(pattern_id, None)

    def set_aside(self, pattern_id: str) -> None:
        """Keeps a refused pattern beside its run, out of the queue."""
        marker = self.root / pattern_id / PENDING
        if marker.exists():
            os.replace(marker, marker.with_name(REJECTED))
        with self._lock:
            self._queued.pop(pattern_id, None)

    def pending(self) -> list[memory_pb2.Pattern]:
        """The queued patterns, oldest run first."""
        with self._lock:
            ids = sorted(self._queued)
        patterns = []
        for pattern_id in ids:
            try:
                data = (self.root / pattern_id / PENDING).read_bytes()
            except FileNotFoundError:
                continue  # Delivered meanwhile by a concurrent offer.
            patterns.append(memory_pb2.Pattern.FromString(data))
        return patterns

    def is_rejected(self, pattern_id: str) -> bool:
        """Whether the memory service refused the pattern for good."""
        return (self.root / pattern_id / REJECTED).exists()

    def rejected_count(self) -> int:
        """How many refused patterns are kept beside their runs."""
        return sum(1 for _ in self.root.glob(f"*/{REJECTED}"))

    def depth(self) -> int:
        """How many patterns wait."""
        with self._lock:
            return len(self._queued)

    def oldest_age_seconds(self) -> float | None:
        """How long the oldest pattern has waited; None when none waits."""
        with self._lock:
            oldest = min(self._queued.values(), default=None)
        return None if oldest is None else time.time() - oldest
