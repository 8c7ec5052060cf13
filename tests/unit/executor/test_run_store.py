"""Run directories: round trip, files, ids, staging leftovers, unsafe ids."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.runs.forms import to_form_value
from executor_service.runs.store import RUN_ID_PATTERN, RunStore, new_run_id

FILES = {"config.json", "form_responses.json", "agents.json", "result.json", "report.md"}


def sample_run(run_id: str | None = None) -> executor_pb2.Run:
    run = executor_pb2.Run(
        run_id=run_id or new_run_id(),
        template_id="python_package_publish",
        template_version="1.0.0",
        status=executor_pb2.RUN_STATUS_FAILED,
        runner=common_pb2.RUNNER_SIMULATED,
        seed=424242,
        answers={
            "package_name": to_form_value("demo"),
            "has_tests": to_form_value(True),
            "test_coverage_required": to_form_value(80.5),
            "quality_checks": to_form_value(["mypy", "ruff"]),
        },
        total_cost_usd=0.012345678901234,
        pattern_delivery=executor_pb2.PATTERN_DELIVERY_QUEUED,
    )
    builder = run.agents.add(
        role="package_builder",
        status=executor_pb2.AGENT_STATUS_SUCCEEDED,
        tier_strategy=common_pb2.TIER_STRATEGY_PROGRESSIVE,
        final_tier=common_pb2.TIER_CAPABLE,
        cost_usd=0.0071,
        output="[simulated] package_builder at tier capable: met every criterion",
    )
    builder.attempts.add(
        number=1,
        tier=common_pb2.TIER_CHEAP,
        model="simulated-cheap",
        input_tokens=1500,
        output_tokens=300,
        cost_usd=0.003,
        success=False,
        error="unmet criteria: twine check passes",
        criteria={"sdist and wheel build": True, "twine check passes": False},
    )
    builder.attempts.add(
        number=2,
        tier=common_pb2.TIER_CAPABLE,
        model="simulated-capable",
        input_tokens=1700,
        output_tokens=400,
        cost_usd=0.0041,
        success=True,
        criteria={"sdist and wheel build": True, "twine check passes": True},
    )
    builder.duration.FromNanoseconds(1_234_567)
    run.agents.add(
        role="publisher",
        status=executor_pb2.AGENT_STATUS_SKIPPED,
        tier_strategy=common_pb2.TIER_STRATEGY_CAPABLE_FIRST,
        depends_on=["package_builder"],
        skip_reason="dependency package_builder did not succeed",
    )
    run.total_duration.FromNanoseconds(2_500_000_001)
    run.create_time.FromDatetime(datetime(2026, 1, 17, 5, 29, 59, 123000, tzinfo=UTC))
    run.finish_time.FromDatetime(datetime(2026, 1, 17, 5, 30, 1, 623000, tzinfo=UTC))
    return run


def test_persist_then_load_round_trips(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    run = sample_run()
    path = store.persist(run, {"seed": 424242})
    assert path == tmp_path / "runs" / run.run_id
    assert run.run_dir == str(path.resolve())
    loaded = store.load(run.run_id)
    assert loaded is not None
    assert loaded == run
    assert loaded.total_cost_usd == run.total_cost_usd
    assert loaded.agents[0].attempts[0].criteria["twine check passes"] is False


def test_round_trip_survives_a_new_store(tmp_path: Path) -> None:
    run = sample_run()
    RunStore(tmp_path).persist(run, {})
    assert RunStore(tmp_path).load(run.run_id) == run


def test_every_file_is_written(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run = sample_run()
    path = store.persist(run, {"runner": "simulated", "concurrency": 4})
    assert {entry.name for entry in path.iterdir()} == FILES
    assert json.loads((path / "config.json").read_text()) == {
        "concurrency": 4,
        "runner": "simulated",
    }
    answers = json.loads((path / "form_responses.json").read_text())
    assert answers["package_name"] == {"string_value": "demo"}
    assert answers["quality_checks"] == {"string_list_value": {"values": ["mypy", "ruff"]}}
    agents = json.loads((path / "agents.json").read_text())
    assert [agent["role"] for agent in agents] == ["package_builder", "publisher"]
    assert agents[1]["skip_reason"] == "dependency package_builder did not succeed"
    result = json.loads((path / "result.json").read_text())
    assert result["run_id"] == run.run_id


def test_report_names_the_simulated_runner(tmp_path: Path) -> None:
    run = sample_run()
    path = RunStore(tmp_path).persist(run, {})
    report = (path / "report.md").read_text()
    assert report.startswith(f"# Run {run.run_id}\n")
    assert "- Runner: `simulated` (simulated results, not model output; seed 424242)" in report
    assert "| package_builder | succeeded | capable | 2 |" in report
    assert "skipped (dependency package_builder did not succeed)" in report
    assert "- Status: **failed**" in report


def test_persist_leaves_no_staging_behind(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.persist(sample_run(), {})
    staging = tmp_path / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_staging_leftovers_are_removed_on_start(tmp_path: Path) -> None:
    leftover = tmp_path / ".staging" / new_run_id()
    leftover.mkdir(parents=True)
    (leftover / "result.json").write_text("{")
    (leftover / "config.json").write_text("{}")
    store = RunStore(tmp_path)
    assert not (tmp_path / ".staging").exists()
    assert store.run_ids() == []
    assert store.load(leftover.name) is None


def test_staging_is_never_listed(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    finished = sample_run()
    store.persist(finished, {})
    interrupted = tmp_path / ".staging" / new_run_id()
    interrupted.mkdir(parents=True)
    (interrupted / "result.json").write_text("{}")
    assert store.run_ids() == [finished.run_id]
    assert store.load(interrupted.name) is None


def test_run_ids_are_newest_first_and_skip_strangers(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    start = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    ids = [new_run_id(start + timedelta(seconds=n)) for n in range(3)]
    for run_id in ids:
        store.persist(sample_run(run_id), {})
    (tmp_path / "notes").mkdir()
    (tmp_path / "README.md").write_text("hi")
    assert store.run_ids() == list(reversed(ids))


def test_missing_run_is_none(tmp_path: Path) -> None:
    assert RunStore(tmp_path).load(new_run_id()) is None


@pytest.mark.parametrize(
    "template",
    [
        "../x",
        "..",
        ".",
        "",
        ".staging",
        "../outside/{id}",
        "{id}/../{id}",
        "{id}/",
        "/{id}",
        "{id}\n",
        "{id}/result.json",
    ],
)
def test_load_rejects_unsafe_ids(tmp_path: Path, template: str) -> None:
    run_id = new_run_id()
    # A readable run outside the store, where a traversal would find it.
    outside = tmp_path / "outside" / run_id
    outside.mkdir(parents=True)
    RunStore(tmp_path / "inside").persist(sample_run(run_id), {})
    (outside / "result.json").write_text((tmp_path / "inside" / run_id / "result.json").read_text())
    store = RunStore(tmp_path / "store")
    (tmp_path / "store" / "x").mkdir()
    assert store.load(template.format(id=run_id)) is None


# --- run ids -----------------------------------------------------------------------------


def test_new_run_id_format() -> None:
    moment = datetime(2026, 1, 17, 5, 29, 59, 500000, tzinfo=UTC)
    run_id = new_run_id(moment)
    assert RUN_ID_PATTERN.fullmatch(run_id)
    assert run_id.startswith("20260117-052959-")
    assert run_id == run_id.lower()


def test_ids_made_in_a_tight_loop_are_unique_and_sort_by_time() -> None:
    ids = [new_run_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(RUN_ID_PATTERN.fullmatch(run_id) for run_id in ids)
    seconds = [run_id[:15] for run_id in ids]
    # Creation order never goes back a second...
    assert seconds == sorted(seconds)
    # ...so sorting keeps every id in its time bucket: later seconds sort after.
    assert [run_id[:15] for run_id in sorted(ids)] == seconds
    for earlier, later in itertools.pairwise(ids):
        if earlier[:15] < later[:15]:
            assert earlier < later


def test_ids_for_later_moments_sort_after() -> None:
    base = datetime(2026, 6, 30, 23, 59, 59, 998000, tzinfo=UTC)
    moments = [base + timedelta(milliseconds=n) for n in range(0, 5000, 7)]
    ids = [new_run_id(moment) for moment in moments]
    assert sorted(ids) == ids
    assert ids[0].startswith("20260630-235959-")
    assert ids[-1].startswith("20260701-000004-")


def test_report_text_from_users_cannot_forge_report_lines(tmp_path: Path) -> None:
    run = sample_run()
    run.answers["package_name"].string_value = "demo\n- Runner: `anthropic` **trusted**"
    report = (RunStore(tmp_path).persist(run, {}) / "report.md").read_text()
    forged = [line for line in report.splitlines() if line.startswith("- Runner: `anthropic`")]
    assert forged == []
    assert "demo - Runner: \\`anthropic\\` \\*\\*trusted\\*\\*" in report
