"""Suggested answers from runs another replica finished into a shared runs
directory: a run is only suggested from once the local index has met it,
since only then is it known whether it is SENSITIVE (and whose)."""

from __future__ import annotations

from pathlib import Path

from executor_service.learning.history import RunHistory
from executor_service.learning.service import Learner
from executor_service.memory.client import MemoryClient
from executor_service.memory.local_index import INDEX_DIR, LocalIndex
from executor_service.runs.store import RunStore
from executor_service.runs.visibility import Viewer
from executor_service.settings import ExecutorSettings
from executor_service.templates.catalog import load_builtin
from memory_service.security.identity import Principal, Role
from tests.support.helpers import ManualClock
from tests.unit.executor.test_local_index import NAMESPACE, make_run, persist

ALICE = Principal("alice", Role.WRITER, frozenset({NAMESPACE}))
BOB = Principal("bob", Role.WRITER, frozenset({NAMESPACE}))


async def test_another_replicas_sensitive_runs_are_suggested_from_to_their_owner_only(
    tmp_path: Path,
) -> None:
    settings = ExecutorSettings(
        data_dir=tmp_path,
        memory_address="127.0.0.1:1",  # Unreachable: similar runs come from the local index.
        auth_disabled=True,
        recommendation_min_runs=2,
        memory_namespace=NAMESPACE,
    )
    catalog = load_builtin()
    template = catalog.get("python_package_publish")
    assert template is not None
    store = RunStore(tmp_path / "runs")
    history_clock, index_clock = ManualClock(), ManualClock()
    index = LocalIndex(tmp_path / INDEX_DIR, NAMESPACE, clock=index_clock)
    index.open(store, catalog)
    memory = MemoryClient.from_settings(settings)
    learner = Learner(settings, catalog, store, memory, index)
    learner.history = RunHistory(store, clock=history_clock)
    await learner.history.ready()
    # Another replica finishes alice's SENSITIVE runs; this replica's history
    # lists the directory before its index does.
    runs = persist(
        store,
        *(
            make_run(
                n, owner="alice", package_name="payroll with salary data", version_bump="major"
            )
            for n in range(3)
        ),
    )
    history_clock.now += 1

    async def suggested(principal: Principal) -> dict[str, object]:
        found = await learner.recommend(
            template, [], {}, [], "simulated", "", None, principal, None
        )
        return {s.question_id: s.value for s in found.suggestions}

    try:
        assert "version_bump" not in await suggested(BOB)
        assert len(learner.history.runs()) == 3  # Counted already, but not suggested from.
        index_clock.now += 1
        assert "version_bump" not in await suggested(BOB)
        assert (await suggested(ALICE))["version_bump"] == "major"
        assert not any(index.visible(run, Viewer.of(BOB)) for run in runs)  # SENSITIVE, alice's.
    finally:
        await memory.close()
