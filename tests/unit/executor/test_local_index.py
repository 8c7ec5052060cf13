"""The executor's local index: a cache of the runs, reused, caught up or rebuilt,
holding each run as the memory service stores it."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.memory import local_index
from executor_service.memory.local_index import (
    INDEX_DIR,
    INDEX_VERSION,
    LocalIndex,
    Opened,
    as_memory_stores,
)
from executor_service.runs.as_pattern import run_to_pattern
from executor_service.runs.forms import to_form_value
from executor_service.runs.store import RunStore, new_run_id
from executor_service.runs.visibility import ANONYMOUS_VIEWER, Viewer
from executor_service.templates.catalog import Catalog, load_builtin
from executor_service.templates.models import Answer
from memory_service.search.filter import compile_filter
from memory_service.search.index import Hit, SearchIndex
from memory_service.search.query import parse_query
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.security.identity import Principal
from memory_service.write_pipeline import Retention, secure
from tests.support.helpers import ManualClock

NAMESPACE = "default"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def catalog() -> Catalog:
    return load_builtin()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the runs the index reads from their files."""
    done: list[str] = []
    read = local_index._read_run

    def counted(root: Path, run_id: str) -> executor_pb2.Run | None:
        done.append(run_id)
        return read(root, run_id)

    monkeypatch.setattr(local_index, "_read_run", counted)
    return done


def make_run(
    number: int,
    template_id: str = "python_package_publish",
    succeeded: bool = True,
    tier: int = common_pb2.TIER_CAPABLE,
    owner: str = "",
    **answers: Answer,
) -> executor_pb2.Run:
    created = START + timedelta(minutes=number)
    run = executor_pb2.Run(
        run_id=new_run_id(created),
        template_id=template_id,
        status=executor_pb2.RUN_STATUS_SUCCEEDED if succeeded else executor_pb2.RUN_STATUS_FAILED,
        runner=common_pb2.RUNNER_SIMULATED,
        answers={key: to_form_value(value) for key, value in answers.items()},
        total_cost_usd=0.01 * (number + 1),
        owner=owner,
    )
    run.agents.add(
        role="package_builder",
        status=executor_pb2.AGENT_STATUS_SUCCEEDED
        if succeeded
        else executor_pb2.AGENT_STATUS_FAILED,
        final_tier=tier,
        cost_usd=run.total_cost_usd,
    ).attempts.add(number=1, tier=tier, success=succeeded)
    run.create_time.FromDatetime(created)
    return run


def persist(store: RunStore, *runs: executor_pb2.Run) -> list[str]:
    for run in runs:
        store.persist(run, {"run_id": run.run_id})
    return [run.run_id for run in runs]


def opened(tmp_path: Path, catalog: Catalog) -> tuple[LocalIndex, Opened]:
    """The index as a starting executor opens it, and what opening did."""
    index = LocalIndex(tmp_path / INDEX_DIR, NAMESPACE)
    return index, index.open(RunStore(tmp_path / "runs"), catalog)


def ids(hits: list[Hit]) -> list[str]:
    return [hit.pattern.id for hit in hits]


def search(
    index: LocalIndex,
    query: str = "",
    condition: str = "",
    limit: int = 50,
    viewer: Viewer = ANONYMOUS_VIEWER,
) -> list[str]:
    """Run ids found, for everyone's eyes unless a viewer is given."""
    terms = parse_query(query) if query else []
    condition_node = compile_filter(condition, PATTERN_SCHEMA)
    return ids(index.search(terms, condition_node, limit, viewer=viewer))


ALICE, BOB, CAROL = Viewer("alice"), Viewer("bob"), Viewer("carol")


def test_a_missing_index_is_built_then_reused_without_reading_a_run(
    tmp_path: Path, catalog: Catalog, reads: list[str]
) -> None:
    runs = persist(
        RunStore(tmp_path / "runs"), *(make_run(n, package_name="demo") for n in range(5))
    )
    first, first_opened = opened(tmp_path, catalog)
    assert (first_opened.action, first_opened.reason, first_opened.runs) == (
        "rebuilt",
        "missing",
        5,
    )
    assert first.run_ids() == set(runs)
    first.close()
    reads.clear()
    again, again_opened = opened(tmp_path, catalog)
    assert (again_opened.action, again_opened.runs, again_opened.added) == ("up_to_date", 5, 0)
    assert reads == []  # Nothing changed: no run file was read.
    assert search(again, "demo") == sorted(runs, reverse=True)  # Newest first on equal rank.


def test_runs_added_and_deleted_while_down_are_caught_up_not_rebuilt(
    tmp_path: Path, catalog: Catalog, reads: list[str]
) -> None:
    store = RunStore(tmp_path / "runs")
    kept, doomed = persist(
        store, make_run(0, package_name="kept"), make_run(1, package_name="doomed")
    )
    opened(tmp_path, catalog)[0].close()
    (arrived,) = persist(store, make_run(2, package_name="arrived"))
    shutil.rmtree(tmp_path / "runs" / doomed)
    reads.clear()
    index, index_opened = opened(tmp_path, catalog)
    assert (index_opened.action, index_opened.added, index_opened.removed) == ("caught_up", 1, 1)
    assert reads == [arrived]  # Only the new run was read.
    assert index.run_ids() == {kept, arrived}
    assert search(index, "doomed") == []
    assert search(index, "arrived") == [arrived]


def test_a_run_added_while_serving_is_in_the_file(tmp_path: Path, catalog: Catalog) -> None:
    store = RunStore(tmp_path / "runs")
    index, _ = opened(tmp_path, catalog)
    run = make_run(0, package_name="live")
    persist(store, run)
    index.add(run_to_pattern(run, catalog.get(run.template_id)))
    assert search(index, "live") == [run.run_id]
    index.close()
    again, again_opened = opened(tmp_path, catalog)
    assert again_opened.action == "up_to_date"
    assert search(again, "live") == [run.run_id]


def test_a_failed_index_write_never_fails_the_run_and_is_caught_up_at_start(
    tmp_path: Path,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RunStore(tmp_path / "runs")
    index, _ = opened(tmp_path, catalog)
    run = make_run(0, package_name="unlucky")
    persist(store, run)

    def full_disk(*args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as patched:
        patched.setattr(SearchIndex, "put", full_disk)
        with caplog.at_level(logging.ERROR):
            index.add(run_to_pattern(run, catalog.get(run.template_id)))
    assert "local index not updated" in caplog.text
    assert search(index, "unlucky") == []
    index.close()
    again, again_opened = opened(tmp_path, catalog)
    assert (again_opened.action, again_opened.added) == ("caught_up", 1)
    assert search(again, "unlucky") == [run.run_id]


def _damage_file(folder: Path) -> None:
    (folder / "open.sqlite3").write_bytes(b"this is not a database" * 200)
    for leftover in folder.glob("open.sqlite3-*"):
        leftover.unlink()


def _set_manifest(folder: Path, key: str, value: str | None) -> None:
    db = sqlite3.connect(folder / "sensitive.sqlite3")
    with db:
        if value is None:
            db.execute("DELETE FROM manifest")
        else:
            db.execute("UPDATE manifest SET value = ? WHERE key = ?", (value, key))
    db.close()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_damage_file, "unreadable"),
        (lambda folder: (folder / "sensitive.sqlite3").unlink(), "missing"),
        (
            lambda folder: _set_manifest(folder, "version", str(INDEX_VERSION + 1)),
            f"written by index version {INDEX_VERSION + 1}",
        ),
        (lambda folder: _set_manifest(folder, "", None), "incomplete"),
        (lambda folder: _set_manifest(folder, "namespace", "other"), "built for namespace"),
    ],
    ids=["corrupt", "half-missing", "other-version", "interrupted-rebuild", "other-namespace"],
)
def test_an_unusable_index_is_deleted_and_rebuilt_from_the_run_files(
    tmp_path: Path, catalog: Catalog, damage: object, reason: str
) -> None:
    runs = persist(
        RunStore(tmp_path / "runs"), *(make_run(n, package_name="demo") for n in range(3))
    )
    opened(tmp_path, catalog)[0].close()
    assert callable(damage)
    damage(tmp_path / INDEX_DIR)
    index, index_opened = opened(tmp_path, catalog)
    assert index_opened.action == "rebuilt"
    assert index_opened.reason.startswith(reason), index_opened.reason
    assert search(index, "demo") == sorted(runs, reverse=True)
    index.close()
    _, again_opened = opened(tmp_path, catalog)
    assert again_opened.action == "up_to_date"


def test_pii_is_scrubbed_before_indexing_as_the_memory_service_does(
    tmp_path: Path, catalog: Catalog
) -> None:
    run = make_run(0, package_name="mailer contact jane.doe@example.com")
    persist(RunStore(tmp_path / "runs"), run)
    index, _ = opened(tmp_path, catalog)
    assert search(index, "jane") == []
    assert search(index, '"example.com"') == []
    assert search(index, "mailer") == [run.run_id]
    (hit,) = index.search(parse_query("mailer"), None, 10, viewer=ANONYMOUS_VIEWER)
    assert "jane" not in hit.pattern.content
    assert "[EMAIL]" in hit.pattern.content
    # The run files keep what was answered: they are the record, the index is a view.
    assert "jane.doe@example.com" in (tmp_path / "runs" / run.run_id / "result.json").read_text()


def test_the_indexed_pattern_is_classified_and_scrubbed_like_the_memory_services() -> None:
    run = make_run(0, package_name="call 650-253-0000 about it")
    pattern = run_to_pattern(run, None)
    stored = as_memory_stores(pattern)
    assert stored is not None
    assert stored.classification == common_pb2.CLASSIFICATION_INTERNAL
    assert "[PHONE]" in stored.content
    assert "650" not in stored.form_responses["package_name"].string_value
    assert pattern.classification == common_pb2.CLASSIFICATION_UNSPECIFIED  # Input untouched.


@pytest.mark.parametrize(
    "package_name",
    ["plain", "mail jane.doe@example.com", "salary review for 650-253-0000", "[public] notes"],
)
def test_the_indexed_pattern_is_what_the_memory_write_pipeline_stores(package_name: str) -> None:
    # Owner and expiry aside (no filter names them), the local index holds
    # byte for byte what the memory service would: same fields, same scrub.
    pattern = run_to_pattern(make_run(0, package_name=package_name), None)
    stored = secure(pattern, Principal.ANONYMOUS, Retention(), now_us=0).pattern
    stored.ClearField("owner")
    stored.ClearField("expire_time")
    assert as_memory_stores(pattern) == stored


def test_sensitive_runs_are_classified_and_searchable_by_their_owner_only(
    tmp_path: Path, catalog: Catalog
) -> None:
    store = RunStore(tmp_path / "runs")
    plain, alices, bobs, ownerless = persist(
        store,
        make_run(0, owner="alice", package_name="payroll"),
        make_run(1, owner="alice", package_name="payroll with salary data"),
        make_run(2, owner="bob", package_name="payroll with salary data"),
        make_run(3, owner="anonymous", package_name="payroll with salary data"),
    )
    index, _ = opened(tmp_path, catalog)
    for again in (False, True):
        if again:  # Reopened, each owner's scope is still there and still merged.
            index.close()
            index, reopened = opened(tmp_path, catalog)
            assert reopened.action == "up_to_date"
        # One ranking over both halves: the shorter plain run scores best,
        # equal scores go newest first.
        assert search(index, "payroll", viewer=ALICE) == [plain, alices]
        assert search(index, "payroll", viewer=BOB) == [plain, bobs]
        assert search(index, "payroll", viewer=CAROL) == [plain]
        # Authentication off: everyone's, ownerless runs too.
        assert search(index, "payroll") == [plain, ownerless, bobs, alices]
        assert search(index, "", 'classification = "SENSITIVE"', viewer=BOB) == [bobs]
        assert search(index, "", 'classification = "INTERNAL"', viewer=BOB) == [plain]
        # The pattern keeps its owner; an ownerless run has none.
        owners = {
            hit.pattern.id: hit.pattern.owner
            for hit in index.search(parse_query("payroll"), None, 10, viewer=ANONYMOUS_VIEWER)
        }
        assert owners == {plain: "alice", alices: "alice", bobs: "bob", ownerless: ""}
        assert [index.visible(run, CAROL) for run in (plain, alices, bobs, ownerless)] == [
            True,
            False,
            False,
            False,
        ]
        assert [index.visible(run, ALICE) for run in (plain, alices, bobs)] == [True, True, False]
        assert all(index.visible(run, ANONYMOUS_VIEWER) for run in (alices, bobs, ownerless))


def test_a_word_only_another_owners_sensitive_run_has_is_not_found_or_corrected_to(
    tmp_path: Path, catalog: Catalog
) -> None:
    """Each owner's SENSITIVE runs have their own full-text scope, as in the
    memory service: neither a match nor a fuzzy correction reaches them."""
    (bobs,) = persist(
        RunStore(tmp_path / "runs"),
        make_run(0, owner="bob", package_name="zanzibar payroll salary"),
    )
    index, _ = opened(tmp_path, catalog)
    assert search(index, "zanzibar", viewer=ALICE) == []
    assert search(index, "zanzibr", viewer=ALICE) == []
    assert search(index, "zanzibr", viewer=BOB) == [bobs]


def test_a_run_left_out_of_the_index_is_still_shown_only_as_it_classifies(
    tmp_path: Path, catalog: Catalog
) -> None:
    """A run whose pattern holds a secret is not searchable (the memory
    service refuses it), but GetRun and ListRuns still show it: to its
    owner only when it is SENSITIVE."""
    (leaky,) = persist(
        RunStore(tmp_path / "runs"),
        make_run(0, owner="bob", package_name="payroll salary AKIAZ7Q4M2W8R5T1Y6UX"),
    )
    index, _ = opened(tmp_path, catalog)
    assert search(index, "payroll") == []
    assert (index.visible(leaky, BOB), index.visible(leaky, ALICE)) == (True, False)
    fresh = make_run(1, owner="bob", package_name="salary review")  # Added while serving.
    index.add(run_to_pattern(fresh, catalog.get(fresh.template_id)))
    assert (index.visible(fresh.run_id, BOB), index.visible(fresh.run_id, ALICE)) == (True, False)


def test_a_cache_from_before_owners_is_rebuilt(tmp_path: Path, catalog: Catalog) -> None:
    """Version 2 kept every SENSITIVE run in one scope: reused, it would
    answer without owners, so it is rebuilt."""
    (bobs,) = persist(
        RunStore(tmp_path / "runs"),
        make_run(0, owner="bob", package_name="payroll salary"),
    )
    opened(tmp_path, catalog)[0].close()
    for name in ("open.sqlite3", "sensitive.sqlite3"):
        db = sqlite3.connect(tmp_path / INDEX_DIR / name)
        with db:
            db.execute("UPDATE manifest SET value = '2' WHERE key = 'version'")
        db.close()
    index, index_opened = opened(tmp_path, catalog)
    assert index_opened.action == "rebuilt"
    assert index_opened.reason == f"written by index version 2, not {INDEX_VERSION}"
    assert search(index, "payroll", viewer=BOB) == [bobs]
    assert search(index, "payroll", viewer=ALICE) == []


def test_the_filter_selects_before_the_limit(tmp_path: Path, catalog: Catalog) -> None:
    # The three oldest of thirty runs are the only failures: a design that
    # took the newest ten and then filtered would find none of them.
    runs = [make_run(n, package_name="demo", succeeded=n >= 3) for n in range(30)]
    persist(RunStore(tmp_path / "runs"), *runs)
    index, _ = opened(tmp_path, catalog)
    failed = [run.run_id for run in reversed(runs[:3])]
    assert search(index, "demo", "success = false", limit=10) == failed
    assert search(index, "", "success = false", limit=10) == failed
    assert len(search(index, "demo", "success = true", limit=10)) == 10


def test_query_words_come_from_the_runs(tmp_path: Path, catalog: Catalog) -> None:
    persist(
        RunStore(tmp_path / "runs"),
        make_run(0, package_name="demo", test_coverage_required=90),
    )
    index, _ = opened(tmp_path, catalog)
    assert index.vocabulary(viewer=CAROL) == (
        ["python_package_publish"],
        ["test_coverage_required"],
    )


def test_query_words_follow_what_the_search_may_show(tmp_path: Path, catalog: Catalog) -> None:
    """A run that became SENSITIVE takes its words out of the open half's
    vocabulary; they count only for a search that may show that run: its
    owner's (or anyone's with authentication off)."""
    run = make_run(0, owner="bob", package_name="demo", test_coverage_required=90)
    persist(RunStore(tmp_path / "runs"), run)
    index, _ = opened(tmp_path, catalog)
    words = (["python_package_publish"], ["test_coverage_required"])
    assert index.vocabulary(viewer=ALICE) == words
    run.answers["package_name"].CopyFrom(to_form_value("payroll with salary data"))
    index.add(run_to_pattern(run, catalog.get(run.template_id)))
    assert search(index, "", 'classification = "SENSITIVE"') == [run.run_id]
    assert index.vocabulary(viewer=ALICE) == ([], [])
    assert index.vocabulary(viewer=BOB) == words
    assert index.vocabulary(viewer=ANONYMOUS_VIEWER) == words


def test_an_unreadable_run_is_logged_and_skipped(
    tmp_path: Path, catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = persist(
        RunStore(tmp_path / "runs"),
        make_run(0, package_name="demo"),
        make_run(1, package_name="demo"),
    )
    (tmp_path / "runs" / bad / "result.json").write_text("{not json")
    with caplog.at_level(logging.ERROR):
        index, _ = opened(tmp_path, catalog)
    (logged,) = [r for r in caplog.records if r.getMessage() == "run not indexed"]
    assert getattr(logged, "run_id", None) == bad
    assert search(index, "demo") == [good]


# --- replicas sharing one runs directory ------------------------------------------


def replica(tmp_path: Path, name: str, catalog: Catalog, clock: ManualClock) -> LocalIndex:
    """A replica's own index over the shared runs directory."""
    index = LocalIndex(tmp_path / name / INDEX_DIR, NAMESPACE, clock=clock)
    index.open(RunStore(tmp_path / "runs"), catalog)
    return index


async def test_runs_another_replica_finishes_are_caught_up_at_most_once_a_second(
    tmp_path: Path, catalog: Catalog, reads: list[str]
) -> None:
    clock = ManualClock()
    (doomed,) = persist(RunStore(tmp_path / "runs"), make_run(0, package_name="doomed"))
    a, b = (replica(tmp_path, name, catalog, clock) for name in ("a", "b"))
    reads.clear()
    # Replica A finishes a run: on disk, and in A's own index.
    other = make_run(1, package_name="arrived")
    persist(RunStore(tmp_path / "runs"), other)
    a.add(run_to_pattern(other, catalog.get(other.template_id)))
    shutil.rmtree(tmp_path / "runs" / doomed)
    clock.now += 0.5
    await b.catch_up()  # Looked half a second ago (at open): not again.
    assert search(b, "arrived") == []
    assert not b.met(other.run_id)
    clock.now += 0.5
    await b.catch_up()
    assert search(b, "arrived") == [other.run_id]
    assert search(b, "doomed") == []
    assert b.run_ids() == {other.run_id}
    assert b.met(other.run_id)
    assert reads == [other.run_id]  # Only the new run was read.
    # A knew its own run: its catch-up reads nothing, and drops the deleted run.
    clock.now += 1
    await a.catch_up()
    assert reads == [other.run_id]
    assert a.run_ids() == {other.run_id}
    # What a catch-up indexed is in the cache: B's next start reads nothing.
    b.close()
    reads.clear()
    again = LocalIndex(tmp_path / "b" / INDEX_DIR, NAMESPACE)
    assert again.open(RunStore(tmp_path / "runs"), catalog).action == "up_to_date"
    assert reads == []


async def test_another_replicas_sensitive_run_is_caught_up_for_its_owner_only(
    tmp_path: Path, catalog: Catalog
) -> None:
    clock = ManualClock()
    b = replica(tmp_path, "b", catalog, clock)
    (alices,) = persist(
        RunStore(tmp_path / "runs"),
        make_run(0, owner="alice", package_name="payroll with salary data"),
    )
    clock.now += 1
    await b.catch_up()
    assert search(b, "payroll", viewer=ALICE) == [alices]
    assert search(b, "payroll", viewer=BOB) == []
    assert (b.visible(alices, ALICE), b.visible(alices, BOB)) == (True, False)


async def test_a_closed_index_does_not_catch_up(tmp_path: Path, catalog: Catalog) -> None:
    clock = ManualClock()
    b = replica(tmp_path, "b", catalog, clock)
    b.close()
    (late,) = persist(RunStore(tmp_path / "runs"), make_run(0, package_name="late"))
    clock.now += 1
    await b.catch_up()  # The executor is stopping: nothing to index into.
    assert not b.met(late)
