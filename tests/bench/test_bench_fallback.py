"""The executor's fallback search over 10,000 runs, against a plain scan of their files.

The runs are genuine run directories written by the executor's own RunStore:
a few hundred runs executed by the real engine (templates, forms,
composition, the simulated runner), replicated under new run ids and times.

Measured in the same run over the same files:

- LocalIndex.search for realistic queries (free text plus a filter, planned
  with query understanding as SearchRuns plans them), against a plain scan
  that loads every run's result.json, turns it into its pattern and matches
  the query (free text contained in the searchable text, the filter through
  the Python matcher over the pattern record), as the design the index
  replaces did. Target: the index's p95 at least 50x below the scan's.
- Opening the index at start: a rebuild from every run's files (no cache),
  a start with nothing changed (must not rebuild), and a start after runs
  were added and deleted while the executor was down (must catch up only).

BENCH_FALLBACK_RUNS shrinks the corpus for a quick run.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.message import Message

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service.memory.local_index import LocalIndex, Opened
from executor_service.rpc.running import describe_config
from executor_service.runners.simulated import SimulatedRunner
from executor_service.runs.as_pattern import run_to_pattern
from executor_service.runs.composition import compose_team
from executor_service.runs.engine import TeamExecution
from executor_service.runs.forms import resolve_answers, to_form_value
from executor_service.runs.store import RUN_ID_PATTERN, RunStore, new_run_id
from executor_service.runs.visibility import ANONYMOUS_VIEWER
from executor_service.templates.catalog import Catalog, load_builtin
from memory_service.search.documents import searchable_text
from memory_service.search.filter import matches
from memory_service.search.planning import SearchPlan, plan_search
from memory_service.search.query import Term
from memory_service.search.schema import PATTERN_SCHEMA, pattern_record
from tests.bench.harness import report, summary, time_calls
from tests.corpus.generate import random_answer

RUNS = int(os.environ.get("BENCH_FALLBACK_RUNS", "10000"))
REAL_RUNS = min(300, RUNS)
SEARCHES = int(os.environ.get("BENCH_FALLBACK_SEARCHES", "400"))
SCAN_ROUNDS = int(os.environ.get("BENCH_FALLBACK_SCAN_ROUNDS", "2"))
STARTS = 5
LIMIT = 10  # SearchRuns' default page size.
TARGET = 50.0
NAMESPACE = "default"

# Realistic searches: free text with a filter, understood phrasings, a
# prefix, a typo, a filter alone.
QUERIES: list[tuple[str, str]] = [
    ("python package publish", "success = true"),
    ("coverage", "form_responses.test_coverage_required >= 80"),
    ("successful workflows with test coverage > 80%", ""),
    ("review", 'agents.tier = "premium"'),
    ("documentation", "total_cost_usd < 0.01"),
    ("failed release runs with more than 3 agents", ""),
    ("publ*", "agent_count >= 4"),
    ("packge", "success = false"),
    ("", 'form_responses.quality_checks:"bandit" AND agents.tier = "capable"'),
]

_WORDS = ("billing", "ledger", "search", "gateway", "auth", "reports", "ingest", "mailer")


async def _no_events(field: str, message: Message) -> None:
    return None


async def real_runs(
    count: int, catalog: Catalog
) -> list[tuple[executor_pb2.Run, dict[str, object]]]:
    """`count` runs executed by the engine with the simulated runner, and their config.json."""
    rng = random.Random(11)
    templates = catalog.all()
    made = []
    for seed in range(count):
        template = templates[seed % len(templates)]
        given = {
            q.id: a for q in template.questions if (a := random_answer(q, rng, _WORDS)) is not None
        }
        resolved, violations = resolve_answers(template, given)
        assert not violations, violations
        team = compose_team(template, resolved)
        agents = await TeamExecution(team, SimulatedRunner(seed), 4, _no_events).run()
        ok = all(agent.status == executor_pb2.AGENT_STATUS_SUCCEEDED for agent in agents)
        run = executor_pb2.Run(
            run_id=new_run_id(),
            template_id=template.id,
            template_version=template.version,
            status=executor_pb2.RUN_STATUS_SUCCEEDED if ok else executor_pb2.RUN_STATUS_FAILED,
            runner=common_pb2.RUNNER_SIMULATED,
            seed=seed,
            answers={key: to_form_value(value) for key, value in resolved.items()},
            agents=agents,
            total_cost_usd=sum(agent.cost_usd for agent in agents),
        )
        run.total_duration.FromMilliseconds(rng.randint(200, 5000))
        made.append((run, describe_config(run, team)))
    return made


def write_runs(
    store: RunStore, base: list[tuple[executor_pb2.Run, dict[str, object]]], first: int, count: int
) -> list[str]:
    """Writes `count` copies of the base runs through RunStore, under new ids
    and times (one every 37 s back from now); returns their ids."""
    now = datetime.now(UTC)

    def write(n: int) -> str:
        source, config = base[n % len(base)]
        run = executor_pb2.Run()
        run.CopyFrom(source)
        created = now - timedelta(seconds=37 * n)
        run.run_id = new_run_id(created)
        run.create_time.FromDatetime(created)
        run.finish_time.FromDatetime(created + timedelta(seconds=3))
        store.persist(run, {**config, "run_id": run.run_id})
        return run.run_id

    # Threads: each persist mostly waits on fsync, which they overlap.
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(write, range(first, first + count)))


def _contains(term: Term, text: str) -> bool:
    if term.prefix:
        return any(word.startswith(term.words[0]) for word in text.split())
    return " ".join(term.words) in text


def plain_scan(root: Path, catalog: Catalog, plan: SearchPlan) -> list[memory_pb2.Pattern]:
    """The search without an index: every run's result.json loaded and matched."""
    found = []
    for entry in os.scandir(root):
        if not RUN_ID_PATTERN.fullmatch(entry.name):
            continue
        text = (Path(entry.path) / "result.json").read_text(encoding="utf-8")
        run = json_format.Parse(text, executor_pb2.Run())
        pattern = run_to_pattern(run, catalog.get(run.template_id))
        if not matches(plan.condition, pattern_record(pattern), PATTERN_SCHEMA):
            continue
        words = searchable_text(pattern).lower()
        if all(_contains(term, words) for term in plan.terms):
            found.append(pattern)
    found.sort(key=lambda p: (-p.create_time.ToMicroseconds(), p.id))
    return found[:LIMIT]


def open_index(folder: Path, root: Path, catalog: Catalog) -> tuple[LocalIndex, Opened]:
    """The index as a starting executor opens it, and what opening did."""
    index = LocalIndex(folder, NAMESPACE)
    return index, index.open(RunStore(root), catalog)


def one(seconds: float) -> dict[str, float]:
    return {"p50_ms": seconds * 1000, "p95_ms": seconds * 1000, "n": 1.0}


async def test_fallback_search_against_a_plain_scan(tmp_path: Path) -> None:
    catalog = load_builtin()
    root = tmp_path / "runs"
    folder = tmp_path / "local-index"
    base = await real_runs(REAL_RUNS, catalog)
    started = time.perf_counter()
    write_runs(RunStore(root), base, 0, RUNS)
    written = time.perf_counter() - started
    rows: dict[str, dict[str, float]] = {}
    verdicts: dict[str, str] = {}

    index = LocalIndex(folder, NAMESPACE)
    rebuilt = await asyncio.to_thread(index.open, RunStore(root), catalog)
    assert (rebuilt.action, rebuilt.runs) == ("rebuilt", RUNS), rebuilt
    index.close()
    starts = []
    for _ in range(STARTS):
        index, opened = open_index(folder, root, catalog)
        assert opened.action == "up_to_date", opened
        starts.append(opened.seconds)
        index.close()

    # While "down": 100 runs arrive, 50 are deleted by hand.
    added = write_runs(RunStore(root), base, RUNS, 100)
    doomed = sorted(set(RunStore(root).run_ids()) - set(added))[:50]
    for run_id in doomed:
        shutil.rmtree(root / run_id)
    index, caught_up = open_index(folder, root, catalog)
    assert (caught_up.action, caught_up.added, caught_up.removed) == ("caught_up", 100, 50)
    assert index.run_ids() == set(RunStore(root).run_ids())

    now = datetime.now(UTC)
    plans = [
        plan_search(q, f, True, index.vocabulary(viewer=ANONYMOUS_VIEWER), now) for q, f in QUERIES
    ]
    answered = 0
    for plan in plans:
        hits = index.search(plan.terms, plan.condition, LIMIT, viewer=ANONYMOUS_VIEWER)
        answered += bool(hits)
        for hit in hits:  # The filter holds for every hit: applied before the limit.
            assert matches(plan.condition, pattern_record(hit.pattern), PATTERN_SCHEMA)
    assert answered >= len(plans) - 1, f"only {answered} of {len(plans)} queries found runs"
    turn = iter(range(10**9))

    async def search_once() -> None:
        plan = plans[next(turn) % len(plans)]
        index.search(plan.terms, plan.condition, LIMIT, viewer=ANONYMOUS_VIEWER)

    searches = summary(await time_calls(search_once, SEARCHES, warmup=len(plans)))
    scans = []
    for _ in range(SCAN_ROUNDS):
        for plan in plans:
            begun = time.perf_counter()
            plain_scan(root, catalog, plan)
            scans.append(time.perf_counter() - begun)
    scanned = summary(scans)
    index.close()

    total = RUNS + 50
    rows[f"LocalIndex.search over {total} runs"] = searches
    rows[f"plain scan of {total} result.json files"] = scanned
    rows[f"open: rebuild from {RUNS} runs' files"] = one(rebuilt.seconds)
    rows["open: nothing changed (no rebuild)"] = summary(starts)
    rows["open: 100 runs added, 50 deleted"] = one(caught_up.seconds)
    p95 = scanned["p95_ms"] / searches["p95_ms"]
    p50 = scanned["p50_ms"] / searches["p50_ms"]
    verdicts["plain scan p95 / index p95"] = (
        f"{p95:.0f}x (target >= {TARGET:.0f}x: {'met' if p95 >= TARGET else 'MISSED'})"
    )
    verdicts["plain scan p50 / index p50"] = f"{p50:.0f}x"
    no_change = summary(starts)["p50_ms"] / 1000
    verdicts["start with nothing changed / rebuild"] = (
        f"{no_change / rebuilt.seconds:.3f} (did not rebuild: {STARTS} of {STARTS} starts)"
    )
    verdicts["start with nothing changed / one plain scan (p50)"] = (
        f"{no_change / (scanned['p50_ms'] / 1000):.2f}"
    )
    verdicts["catch-up start / rebuild"] = f"{caught_up.seconds / rebuilt.seconds:.3f}"
    verdicts["corpus"] = (
        f"{REAL_RUNS} engine runs replicated to {RUNS} run directories "
        f"(written in {written:.0f} s), then +100 -50"
    )
    report("bench_fallback", rows, verdicts)
