"""A run's event log: every event its RunWorkflow streamed, one JSON line each.

While the run is in progress the log is `<runs root>/.journal/<run_id>/events.jsonl`,
appended and flushed as each event is emitted (no fsync per event: a crash
loses at most the events the run's checkpoint does not need). Beside it,
`events.run.json` holds the run as it started (owner, template, answers), so
any replica sharing the runs root can decide who may watch it before the run
is on disk. When the run ends, after its last event (run_finished), the whole
log is written durably into the run's directory as `events.jsonl` and only
then is the journal's copy removed: at every moment one of the two is whole
up to what was emitted, and a reader that finds the journal gone finds the
final log. WatchRun (rpc/watching.py) reads both.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from google.protobuf import json_format

from attune.executor.v1 import executor_pb2
from executor_service.runs.journal import write_atomically
from memory_service.servicekit.private_files import FILE_MODE, private_dir

log = logging.getLogger("attune.executor.runs")

JOURNAL = ".journal"  # Under the runs root; run ids never start with a dot.
EVENTS = "events.jsonl"
STARTED_RUN = "events.run.json"


def journal_dir(root: Path, run_id: str) -> Path:
    """The journal directory of a run in progress."""
    return root / JOURNAL / run_id


def to_line(event: executor_pb2.RunWorkflowResponse) -> bytes:
    """One event as a line of the log."""
    text = json_format.MessageToJson(event, preserving_proto_field_name=True, indent=None)
    return text.encode() + b"\n"


def parse_lines(data: bytes) -> tuple[list[executor_pb2.RunWorkflowResponse], int]:
    """The whole lines of `data` as events, and how many bytes they took: a
    line still being written (no newline yet) is left for the next read."""
    end = data.rfind(b"\n") + 1
    events = [
        json_format.Parse(line, executor_pb2.RunWorkflowResponse(), ignore_unknown_fields=True)
        for line in data[:end].splitlines()
        if line.strip()
    ]
    return events, end


class EventLog:
    """The log one run in progress writes. Called on the event loop; each
    append is one small buffered write and a flush."""

    def __init__(self, root: Path, run: executor_pb2.Run) -> None:
        self._root = root
        self._run_id = run.run_id
        directory = private_dir(journal_dir(root, run.run_id))
        started = json_format.MessageToJson(run, preserving_proto_field_name=True)
        write_atomically(directory / STARTED_RUN, started.encode())
        descriptor = os.open(directory / EVENTS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        self._file: IO[bytes] | None = os.fdopen(descriptor, "ab")

    def append(self, event: executor_pb2.RunWorkflowResponse) -> None:
        """Adds the event; readers see it at once."""
        if self._file is None:
            return
        try:
            self._file.write(to_line(event))
            self._file.flush()
        except OSError as error:
            # The log serves re-attaching callers; the run itself goes on.
            log.warning("event log failed", extra={"run_id": self._run_id, "reason": str(error)})

    def keep(self) -> None:
        """Stops writing but keeps the log in the journal: the run was suspended
        at shutdown, and its resumption appends to the same log."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def last_sequence(self) -> int:
        """The sequence of the last whole event in the journal's log (0 if none)."""
        try:
            data = (journal_dir(self._root, self._run_id) / EVENTS).read_bytes()
        except OSError:
            return 0
        events, _ = parse_lines(data)
        return max((event.sequence for event in events), default=0)

    def close(self, run_dir: str) -> None:
        """Ends the log: written durably into the run directory `run_dir`
        (when the run reached disk), then the journal's copy is removed."""
        if self._file is None:
            return
        self._file.close()
        self._file = None
        directory = journal_dir(self._root, self._run_id)
        try:
            if run_dir:
                write_atomically(Path(run_dir) / EVENTS, (directory / EVENTS).read_bytes())
            (directory / EVENTS).unlink(missing_ok=True)
            (directory / STARTED_RUN).unlink(missing_ok=True)
            # The journal directory may hold other files (checkpoints) still.
            with contextlib.suppress(OSError):
                directory.rmdir()
        except OSError as error:
            log.warning("event log not kept", extra={"run_id": self._run_id, "reason": str(error)})


def log_paths(root: Path, run_id: str) -> Iterator[Path]:
    """Where a run's log may be, in the order to look: the journal first (a
    run in progress), then the run directory (a finished run)."""
    yield journal_dir(root, run_id) / EVENTS
    yield root / run_id / EVENTS


def started_run(root: Path, run_id: str) -> executor_pb2.Run | None:
    """The run as it started, from the journal, or None when not in progress."""
    try:
        text = (journal_dir(root, run_id) / STARTED_RUN).read_text(encoding="utf-8")
        return json_format.Parse(text, executor_pb2.Run(), ignore_unknown_fields=True)
    except (OSError, json_format.ParseError):
        return None
