"""The run history: loaded from the run files, kept current by recording this
process's runs and catching up with runs other replicas add to the files."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.learning.facts import run_fact
from executor_service.learning.history import RunHistory
from executor_service.runs.forms import to_form_value
from executor_service.runs.store import RunStore, new_run_id
from executor_service.templates.models import Tier
from tests.support.helpers import ManualClock

START = datetime(2026, 1, 5, 9, tzinfo=UTC)


def make_run(
    minutes: int, success: bool, runner: common_pb2.Runner.ValueType = common_pb2.RUNNER_SIMULATED
) -> executor_pb2.Run:
    when = START + timedelta(minutes=minutes)
    attempt = executor_pb2.Attempt(
        number=1, tier=common_pb2.TIER_CHEAP, success=success, cost_usd=0.01
    )
    agent = executor_pb2.AgentResult(
        role="coder",
        status=executor_pb2.AGENT_STATUS_SUCCEEDED if success else executor_pb2.AGENT_STATUS_FAILED,
        attempts=[attempt],
        cost_usd=0.01,
    )
    run = executor_pb2.Run(
        run_id=new_run_id(when),
        template_id="t",
        status=executor_pb2.RUN_STATUS_SUCCEEDED if success else executor_pb2.RUN_STATUS_FAILED,
        runner=runner,
        agents=[agent],
        total_cost_usd=0.01,
        answers={"bump": to_form_value("minor"), "n": to_form_value(80.0)},
    )
    run.create_time.FromDatetime(when)
    return run


def test_facts_keep_what_learning_reads() -> None:
    fact = run_fact(make_run(0, success=True))
    assert fact.template_id == "t"
    assert fact.runner == "simulated"
    assert fact.succeeded
    assert fact.create_time == START
    assert dict(fact.answers) == {"bump": "minor", "n": 80.0}
    (agent,) = fact.agents
    assert agent.role == "coder"
    assert agent.succeeded
    assert [(a.tier, a.success, a.cost_usd) for a in agent.attempts] == [(Tier.CHEAP, True, 0.01)]


async def test_runs_on_disk_and_recorded_runs_are_counted_once(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    on_disk, both = make_run(0, success=True), make_run(1, success=False)
    store.persist(on_disk, {})
    history = RunHistory(store)
    # Recorded as it finished, before the first reader loaded the files.
    history.record(both)
    store.persist(both, {})
    await history.ready()
    history.record(both)
    assert sorted(fact.run_id for fact in history.runs()) == sorted([on_disk.run_id, both.run_id])
    tally = history.evidence("t", "simulated")[("coder", Tier.CHEAP)]
    assert (tally.attempts, tally.successes) == (2, 1)


async def test_runs_another_replica_finished_are_caught_up_at_most_once_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore(tmp_path / "runs")
    clock = ManualClock()
    history = RunHistory(store, clock=clock)
    await history.ready()
    # Another replica sharing the runs directory (its own RunStore) finishes a run.
    other = make_run(2, success=True)
    RunStore(tmp_path / "runs").persist(other, {})
    read: list[str] = []
    readable = store.readable

    def counted(run_id: str) -> executor_pb2.Run | None:
        read.append(run_id)
        return readable(run_id)

    monkeypatch.setattr(store, "readable", counted)
    clock.now += 0.5
    await history.ready()  # Listed half a second ago: not again.
    assert history.runs() == []
    clock.now += 0.5
    await history.ready()
    assert [fact.run_id for fact in history.runs()] == [other.run_id]
    # This process's own runs are recorded as they finish; a catch-up reads
    # only the runs it does not know.
    own = make_run(3, success=False)
    store.persist(own, {})
    history.record(own)
    clock.now += 1
    await history.ready()
    assert read == [other.run_id]
    assert sorted(fact.run_id for fact in history.runs()) == sorted([other.run_id, own.run_id])
    assert history.evidence("t", "simulated")[("coder", Tier.CHEAP)].attempts == 2


async def test_evidence_is_kept_per_runner(tmp_path: Path) -> None:
    history = RunHistory(RunStore(tmp_path / "runs"))
    await history.ready()
    history.record(make_run(0, success=True, runner=common_pb2.RUNNER_ANTHROPIC))
    history.record(make_run(1, success=True))
    assert history.evidence("t", "anthropic")[("coder", Tier.CHEAP)].attempts == 1
    assert history.evidence("t", "simulated")[("coder", Tier.CHEAP)].attempts == 1
    assert history.evidence("t", "openai") == {}
    # The evidence handed out is a copy: callers cannot change the history.
    history.evidence("t", "simulated")[("coder", Tier.CHEAP)].attempts = 99
    assert history.evidence("t", "simulated")[("coder", Tier.CHEAP)].attempts == 1


async def test_unreadable_runs_are_skipped_and_not_read_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RunStore(tmp_path / "runs")
    good = make_run(0, success=True)
    store.persist(good, {})
    broken = store.root / new_run_id(START + timedelta(hours=1))
    broken.mkdir()
    (broken / "result.json").write_text("{not json")
    clock = ManualClock()
    history = RunHistory(store, clock=clock)
    with caplog.at_level(logging.ERROR):
        await history.ready()
        clock.now += 5
        await history.ready()
    assert [fact.run_id for fact in history.runs()] == [good.run_id]
    assert [record.message for record in caplog.records] == ["run skipped"]
