"""The journal of a run in progress: what a restarted executor resumes from.

Each run in progress has a folder `<runs root>/.journal/<run_id>/`:

- `start.json`: everything needed to run it again without its caller (the
  run as it started, its planned team, its config.json, the runner and the
  runner's seed, the caller its spend accrues to, the replica running it).
  Written before the first agent starts.
- `agents/<role>.json`: the agent's result (AgentResult as JSON) as it
  stands, rewritten after each of its attempts and when it finishes. A
  resumed run keeps a finished agent as it is and lets an unfinished one go
  on from its next attempt, so no recorded attempt is paid for twice, and a
  crash loses at most the attempts in progress.

Every file is written atomically (a temporary file, fsynced, renamed, the
folder fsynced): a reader finds the old version or the new, never part of
one. The journal's own files are removed once the run's directory is
persisted (files are the record: from then on the run directory says it
all); a journal whose run directory exists is a leftover of a crash between
the two, and is removed, not resumed. Other files in the folder (the event
log, `events.jsonl`) belong to their own module and are left alone.

`.journal` is not a run id, so run listings (RunStore.run_ids) skip it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from google.protobuf import json_format

from attune.executor.v1 import executor_pb2
from executor_service.runs.composition import PlannedAgent
from executor_service.runs.store import RUN_ID_PATTERN
from executor_service.templates.models import Tier, TierStrategy
from memory_service.servicekit.private_files import FILE_MODE, private_dir

log = logging.getLogger("attune.executor.journal")

JOURNAL_DIR = ".journal"
START = "start.json"
AGENTS = "agents"


class CorruptJournalError(Exception):
    """A journal file that cannot be read back."""


def write_atomically(path: Path, data: bytes) -> None:
    """Writes `path` so a reader (or a crash) sees the old file or the new one."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def agent_file_name(role: str) -> str:
    """`<role>.json`: a template's role ([a-z][a-z0-9_]*) as it is; any other
    string quoted, or hashed when that would be no file name (empty, too long)."""
    quoted = quote(role, safe="")
    if not quoted or quoted.startswith(".") or len(quoted) > 200:
        quoted = "sha256-" + hashlib.sha256(role.encode()).hexdigest()
    return quoted + ".json"


class RunJournal:
    """The journal folder of one run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.run_id = folder.name

    def start(self, record: dict[str, Any]) -> None:
        """Writes start.json: the run as it starts, enough to resume it."""
        private_dir(self.folder / AGENTS)
        write_atomically(self.folder / START, orjson.dumps(record, option=orjson.OPT_SORT_KEYS))

    def record_agent(self, result: executor_pb2.AgentResult) -> None:
        """Writes the agent's result as it stands (after an attempt, or final)."""
        data = json_format.MessageToJson(result, preserving_proto_field_name=True, indent=None)
        write_atomically(self.folder / AGENTS / agent_file_name(result.role), data.encode())

    def start_record(self) -> dict[str, Any]:
        """start.json, parsed; CorruptJournalError if it cannot be read."""
        try:
            record = orjson.loads((self.folder / START).read_bytes())
        except (OSError, orjson.JSONDecodeError) as error:
            raise CorruptJournalError(f"{self.folder / START}: {error}") from None
        if not isinstance(record, dict):
            raise CorruptJournalError(f"{self.folder / START}: not an object")
        return record

    def agents(self) -> dict[str, executor_pb2.AgentResult]:
        """The agents' results recorded so far, by role."""
        results = {}
        folder = self.folder / AGENTS
        if not folder.is_dir():
            return {}
        for path in sorted(folder.glob("*.json")):
            try:
                result = json_format.Parse(
                    path.read_text(encoding="utf-8"), executor_pb2.AgentResult()
                )
            except (json_format.ParseError, OSError, UnicodeDecodeError) as error:
                raise CorruptJournalError(f"{path}: {error}") from None
            if agent_file_name(result.role) != path.name:
                raise CorruptJournalError(f"{path}: holds role {result.role!r}")
            results[result.role] = result
        return results

    def remove(self) -> None:
        """Removes the journal's own files, start.json first (without it
        nothing is resumed), and the folder once nothing else is in it."""
        (self.folder / START).unlink(missing_ok=True)
        (self.folder / f".{START}.tmp").unlink(missing_ok=True)  # A crash mid-write.
        agents = self.folder / AGENTS
        if agents.is_dir():
            for path in agents.iterdir():
                path.unlink(missing_ok=True)
            agents.rmdir()
        with contextlib.suppress(OSError):  # Not empty: another module's files.
            self.folder.rmdir()


class Journals:
    """The journals under one runs root, as one replica sees them.

    Replicas may share the runs root: each journal names the replica running
    its run (start.json `replica`), and a replica resumes only its own, plus
    those naming none (written before journals named their replica).
    Without a replica (tools, tests) every journal counts.
    """

    def __init__(self, runs_root: Path, replica: str = "") -> None:
        self.runs_root = runs_root
        self.root = runs_root / JOURNAL_DIR
        self.replica = replica

    def open(self, run_id: str) -> RunJournal:
        """The journal of a run (its folder made when it starts)."""
        private_dir(self.root)
        return RunJournal(self.root / run_id)

    def unfinished(self) -> list[RunJournal]:
        """Journals of runs to resume, oldest first; leftovers of runs that
        were persisted already are removed."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in sorted(self.root.iterdir()):
            if not RUN_ID_PATTERN.fullmatch(folder.name) or not (folder / START).is_file():
                continue
            journal = RunJournal(folder)
            if not self._is_mine(journal):
                continue  # Another replica's run: its own restart resumes it.
            if (self.runs_root / folder.name).exists():
                journal.remove()  # Persisted, then stopped before the journal went.
                continue
            found.append(journal)
        return found

    def _is_mine(self, journal: RunJournal) -> bool:
        """Whether this replica resumes the journal: its own, or one naming
        no replica. An unreadable start.json counts as its own, so the
        resumption logs it for an operator rather than skip it silently."""
        try:
            owner = journal.start_record().get("replica", "")
        except CorruptJournalError:
            return True
        return not self.replica or not owner or owner == self.replica


def team_record(team: list[PlannedAgent]) -> list[dict[str, Any]]:
    """The planned team as start.json keeps it: every field, to rebuild it as planned."""
    return [
        {
            "role": agent.role,
            "strategy": agent.strategy.value,
            "depends_on": list(agent.depends_on),
            "stage": agent.stage,
            "config": agent.config,
            "success_criteria": list(agent.success_criteria),
            "start_tier": None if agent.start_tier is None else agent.start_tier.value,
        }
        for agent in team
    ]


def team_from_record(record: list[dict[str, Any]]) -> list[PlannedAgent]:
    """The team team_record kept; KeyError or ValueError if it is not one."""
    return [
        PlannedAgent(
            role=str(entry["role"]),
            strategy=TierStrategy(entry["strategy"]),
            depends_on=tuple(str(role) for role in entry["depends_on"]),
            stage=int(entry["stage"]),
            config={str(key): str(value) for key, value in entry["config"].items()},
            success_criteria=tuple(str(text) for text in entry["success_criteria"]),
            start_tier=None if entry["start_tier"] is None else Tier(entry["start_tier"]),
        )
        for entry in record
    ]
