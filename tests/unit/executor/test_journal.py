"""The journal of a run in progress (runs/journal.py), and the engine resuming from it."""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path

import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune.executor.v1 import executor_pb2
from executor_service.runners.base import AttemptOutcome
from executor_service.runs.composition import PlannedAgent
from executor_service.runs.engine import TeamExecution
from executor_service.runs.journal import (
    AGENTS,
    START,
    CorruptJournalError,
    Journals,
    RunJournal,
    agent_file_name,
    team_from_record,
    team_record,
    write_atomically,
)
from executor_service.runs.store import new_run_id
from executor_service.templates.models import Tier, TierStrategy
from tests.support.proto_strategies import MessageStrategies

SUCCEEDED = executor_pb2.AGENT_STATUS_SUCCEEDED
FAILED = executor_pb2.AGENT_STATUS_FAILED
RUNNING = executor_pb2.AGENT_STATUS_RUNNING


def _json_durations(result: executor_pb2.AgentResult) -> executor_pb2.AgentResult:
    # Durations JSON can hold (about 10,000 years), as every run file's are.
    for duration in [result.duration, *(attempt.duration for attempt in result.attempts)]:
        duration.FromNanoseconds(abs(duration.seconds) % 10**6 * 10**9 + abs(duration.nanos))
    # JSON writes a NaN without its sign bit: one NaN, as JSON can hold it.
    if math.isnan(result.cost_usd):
        result.cost_usd = math.nan
    for attempt in result.attempts:
        if math.isnan(attempt.cost_usd):
            attempt.cost_usd = math.nan
    return result


AGENT_RESULTS = (
    MessageStrategies(huge=300, max_depth=3)
    .messages(executor_pb2.AgentResult.DESCRIPTOR)
    .map(_json_durations)
)


def started(root: Path) -> RunJournal:
    journal = Journals(root).open(new_run_id())
    journal.start({"run": {"run_id": journal.run_id}, "caller": "ada"})
    return journal


def test_write_atomically_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    write_atomically(target, b"old")
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert [path.name for path in tmp_path.iterdir()] == ["a.json"]
    assert target.stat().st_mode & 0o077 == 0  # The owner's only, like every run file.


def test_a_write_cut_short_leaves_the_last_whole_version(tmp_path: Path) -> None:
    journal = started(tmp_path)
    first = executor_pb2.AgentResult(role="planner", status=RUNNING, cost_usd=0.5)
    journal.record_agent(first)
    # A crash mid-write leaves only a temporary file: it is never read.
    (journal.folder / AGENTS / ".planner.json.tmp").write_text('{"role": "plan')
    assert journal.agents() == {"planner": first}
    journal.remove()
    assert not journal.folder.exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(results=st.lists(AGENT_RESULTS, max_size=4))
def test_agent_results_read_back_as_written(
    tmp_path_factory: pytest.TempPathFactory, results: list[executor_pb2.AgentResult]
) -> None:
    journal = started(tmp_path_factory.mktemp("journal"))
    for result in results:
        journal.record_agent(result)

    # The last result recorded for a role is the one read back (compared as
    # bytes: a NaN cost is read back as NaN, which equals nothing).
    def wire(found: dict[str, executor_pb2.AgentResult]) -> dict[str, bytes]:
        return {
            role: result.SerializeToString(deterministic=True) for role, result in found.items()
        }

    assert wire(journal.agents()) == wire({result.role: result for result in results})


@given(role=st.text(max_size=300))
def test_every_role_is_one_file_name(role: str) -> None:
    name = agent_file_name(role)
    assert "/" not in name
    assert not name.startswith(".")
    assert len(name.encode()) <= 255


def test_template_roles_keep_their_names() -> None:
    assert agent_file_name("security_auditor") == "security_auditor.json"


def test_the_start_record_reads_back(tmp_path: Path) -> None:
    journal = started(tmp_path)
    assert journal.start_record() == {"run": {"run_id": journal.run_id}, "caller": "ada"}


def test_unreadable_files_are_corrupt_not_guessed(tmp_path: Path) -> None:
    journal = started(tmp_path)
    (journal.folder / START).write_text("{not json")
    with pytest.raises(CorruptJournalError):
        journal.start_record()
    (journal.folder / AGENTS / "planner.json").write_text('{"role": "tester"}')
    with pytest.raises(CorruptJournalError, match="tester"):
        journal.agents()


def test_unfinished_lists_started_runs_and_drops_those_persisted(tmp_path: Path) -> None:
    journals = Journals(tmp_path)
    resumable, persisted = started(tmp_path), started(tmp_path)
    (tmp_path / persisted.run_id).mkdir()  # Persisted, then stopped before its journal went.
    journals.open(new_run_id()).folder.mkdir()  # No start.json: nothing to resume.
    (journals.root / "not-a-run").mkdir()
    assert [journal.run_id for journal in journals.unfinished()] == [resumable.run_id]
    assert not persisted.folder.exists()


def test_remove_leaves_the_files_of_other_modules(tmp_path: Path) -> None:
    journal = started(tmp_path)
    journal.record_agent(executor_pb2.AgentResult(role="planner", status=SUCCEEDED))
    (journal.folder / "events.jsonl").write_text("{}\n")
    journal.remove()
    assert [path.name for path in journal.folder.iterdir()] == ["events.jsonl"]
    assert Journals(tmp_path).unfinished() == []


def test_the_team_record_rebuilds_the_team_as_planned() -> None:
    team = [
        PlannedAgent("planner", TierStrategy.PROGRESSIVE, (), 0, {"depth": "2"}, ("plan",)),
        PlannedAgent("tester", TierStrategy.CHEAP_ONLY, ("planner",), 1, start_tier=Tier.CAPABLE),
    ]
    assert team_from_record(team_record(team)) == team


# --- the engine resuming from a journal ---------------------------------------------------


class CountingRunner:
    """Succeeds at premium only; counts every attempt it is asked for."""

    name = "simulated"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def attempt(self, agent: PlannedAgent, tier: Tier, number: int) -> AttemptOutcome:
        self.calls.append((agent.role, number))
        error = "" if tier is Tier.PREMIUM else "not good enough"
        return AttemptOutcome(f"m-{tier.value}", 1, 1, 0.25, {}, "out", error)


class StoppedError(Exception):
    """The executor stopping, as far as the engine can tell."""


async def _quiet(name: str, message: Message) -> None:
    pass


async def test_a_resumed_team_keeps_finished_agents_and_goes_on_from_the_next_attempt(
    tmp_path: Path,
) -> None:
    team = [
        PlannedAgent("planner", TierStrategy.PROGRESSIVE, (), 0),
        PlannedAgent("builder", TierStrategy.PROGRESSIVE, ("planner",), 1),
    ]
    journal = started(tmp_path)
    first = CountingRunner()
    checkpointed: list[executor_pb2.AgentResult] = []

    async def checkpoint(result: executor_pb2.AgentResult) -> None:
        checkpointed.append(result)
        await asyncio.to_thread(journal.record_agent, result)
        if result.role == "builder":  # StoppedError after the builder's first attempt.
            raise StoppedError

    with pytest.raises(ExceptionGroup):
        await TeamExecution(team, first, 4, _quiet, checkpoint=checkpoint).run()
    assert first.calls == [("planner", 1), ("planner", 2), ("planner", 3), ("builder", 1)]
    assert [(r.role, r.status, len(r.attempts)) for r in checkpointed] == [
        ("planner", RUNNING, 1),
        ("planner", RUNNING, 2),
        ("planner", SUCCEEDED, 3),
        ("builder", RUNNING, 1),
    ]
    recorded = journal.agents()

    second = CountingRunner()
    results = await TeamExecution(team, second, 4, _quiet, recorded=recorded).run()
    assert second.calls == [("builder", 2), ("builder", 3)]  # Nothing paid twice.
    planner, builder = results
    assert planner == recorded["planner"]
    assert [a.number for a in builder.attempts] == [1, 2, 3]
    assert builder.attempts[0] == recorded["builder"].attempts[0]
    assert (builder.status, builder.cost_usd) == (SUCCEEDED, 0.75)


async def test_a_journal_with_every_attempt_failed_keeps_the_agent_failed() -> None:
    team = [PlannedAgent("planner", TierStrategy.CHEAP_ONLY, (), 0)]
    recorded = executor_pb2.AgentResult(role="planner", status=FAILED, cost_usd=0.25)
    recorded.attempts.add(number=1, success=False, cost_usd=0.25)
    runner = CountingRunner()
    (result,) = await TeamExecution(team, runner, 4, _quiet, recorded={"planner": recorded}).run()
    assert runner.calls == []
    assert result == recorded


def test_fsync_is_not_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append(descriptor)
        real(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    write_atomically(tmp_path / "a.json", b"{}")
    assert len(synced) == 2  # The file, then its folder (the rename).
