"""The outbox: run patterns waiting for the memory service, inside their runs.

A run's pattern is written into the run directory (`pattern.pending.pb`) by
the same atomic write as the run itself, so a run is never on disk without
its queued pattern. The marker is removed only once the memory service has
acknowledged the pattern; a pattern the memory service refuses for good is
renamed `pattern.rejected.pb` and kept for inspection, as is a marker that
no longer parses. Replay goes in run id order, which is creation order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Container
from pathlib import Path

from google.protobuf.message import DecodeError

from attune.memory.v1 import memory_pb2

log = logging.getLogger("attune.executor.outbox")

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

    def rescan(self) -> None:
        """Catches up with the markers on disk: replicas sharing the runs root
        queue patterns into it, and deliver them, too. Any thread."""
        on_disk = {marker.parent.name: marker for marker in self.root.glob(f"*/{PENDING}")}
        with self._lock:
            known = set(self._queued)
        for pattern_id, marker in on_disk.items():
            if pattern_id not in known:
                with contextlib.suppress(FileNotFoundError):  # Delivered meanwhile.
                    mtime = marker.stat().st_mtime
                    with self._lock:
                        self._queued.setdefault(pattern_id, mtime)
        for pattern_id in known - on_disk.keys():
            # Checked again one by one: a run persisted after the listing is kept.
            if not (self.root / pattern_id / PENDING).exists():
                with self._lock:
                    self._queued.pop(pattern_id, None)

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

    def queued_ids(self) -> list[str]:
        """The ids of the queued patterns, oldest run first."""
        with self._lock:
            return sorted(self._queued)

    def any_queued(self, exclude: Container[str] = frozenset()) -> bool:
        """Whether a pattern not in `exclude` waits (no sorting: cheap to ask often)."""
        with self._lock:
            return any(pattern_id not in exclude for pattern_id in self._queued)

    def pending(self, exclude: Container[str] = frozenset()) -> list[memory_pb2.Pattern]:
        """The queued patterns, oldest run first, but for those in `exclude`."""
        patterns = []
        for pattern_id in self.queued_ids():
            if pattern_id in exclude:
                continue
            try:
                data = (self.root / pattern_id / PENDING).read_bytes()
            except FileNotFoundError:
                continue  # Delivered meanwhile by a concurrent offer.
            try:
                patterns.append(memory_pb2.Pattern.FromString(data))
            except DecodeError:
                # Written atomically, so only damage from outside gets here.
                # Kept for inspection rather than replayed: one unreadable
                # marker must not hold back every pattern queued after it.
                log.error("queued pattern unreadable, set aside", extra={"pattern_id": pattern_id})
                self.set_aside(pattern_id)
        return patterns

    def waits(self, pattern_id: str) -> bool:
        """Whether the pattern's marker is on disk (queued by any replica)."""
        return (self.root / pattern_id / PENDING).exists()

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
