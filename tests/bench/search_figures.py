"""SearchPatterns over a built store, as a replica serves it: the figures and verdicts.

Two kinds of request, each with text AND a filter, timed separately:

- explicit: the text and a typed filter, query understanding off;
- questions: natural questions with understanding on, which the service
  turns into ranked words and an understood filter (a template, an
  outcome, a tier, a form answer, a cost, an agent count).

A replica may build an in-memory search index when first asked (issue 15's
engine builds one per namespace from the store): the first search is timed
on its own as the cold build, with what it adds to the replica's memory,
and every timed search comes after a warm-up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.dev.stack import memory_process
from tests.bench.harness import summary, time_calls
from tests.bench.search_corpus import NAMESPACE, SearchStore

EXPLICIT = [
    ("python package publish", "success = true"),
    ("coverage", "form_responses.test_coverage_required >= 80"),
    ("security audit", 'agents.tier = "premium"'),
    ("documentation", "total_cost_usd < 0.2"),
    ("review", "agent_count > 5"),
]
# Words of the patterns' text beside phrases understanding turns into a filter.
QUESTIONS = [
    "migration guide and changelog for release prep runs that failed",
    "mypy and ruff checks in python package publish runs that succeeded",
    "secret scanner findings in security audit runs with premium agents",
    "mutation and property based tests in test coverage boost runs with coverage at least 80",
    "sphinx api reference in documentation runs that cost less than $0.20",
    "readability and performance review comments from code review runs with more than 5 agents",
]


@dataclass(frozen=True)
class Target:
    """The most a search may take, as multiples of the echo's p50 and p95."""

    p50: float
    p95: float | None = None


@dataclass
class Served:
    """What one replica's searches measured."""

    ready_seconds: float = 0.0
    cold_seconds: float = 0.0
    first_question_seconds: float = 0.0
    rss_serving: int = 0
    rss_after_cold: int = 0
    rss_after: int = 0
    explicit: dict[str, float] | None = None
    questions: dict[str, float] | None = None
    unanswered: frozenset[str] = frozenset()  # Questions that found nothing.
    not_understood: frozenset[str] = frozenset()  # Questions read without a filter.


def resident_bytes(pid: int) -> int:
    """The resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def serve_searches(store: SearchStore, searches: int) -> Served:
    """Starts a replica on the store, times its searches, stops it."""
    served = Served()
    started = time.perf_counter()
    # The embedded store builds its text index at open: about 10,000 patterns a
    # second here, so a million takes minutes before SERVING (reported below).
    memory = memory_process(store.root, LOG_LEVEL="warning").start(
        timeout=max(30.0, store.patterns / 2000)
    )
    served.ready_seconds = time.perf_counter() - started
    unanswered: set[str] = set()
    not_understood: set[str] = set()
    try:
        assert memory.process is not None
        pid = memory.process.pid
        served.rss_serving = resident_bytes(pid)
        async with grpc.aio.insecure_channel(memory.address) as channel:
            stub = memory_pb2_grpc.MemoryServiceStub(channel)
            turn = iter(range(10**9))

            async def explicit_once() -> None:
                query, condition = EXPLICIT[next(turn) % len(EXPLICIT)]
                request = memory_pb2.SearchPatternsRequest(
                    namespace=NAMESPACE,
                    query=query,
                    filter=condition,
                    disable_query_understanding=True,
                )
                response = await stub.SearchPatterns(request, timeout=600)
                assert response.results, (query, condition)

            async def question_once() -> None:
                question = QUESTIONS[next(turn) % len(QUESTIONS)]
                request = memory_pb2.SearchPatternsRequest(namespace=NAMESPACE, query=question)
                response = await stub.SearchPatterns(request, timeout=600)
                if not response.applied_filter:
                    not_understood.add(question)
                if not response.results:
                    unanswered.add(question)

            served.cold_seconds = (await time_calls(explicit_once, 1, warmup=0))[0]
            served.rss_after_cold = resident_bytes(pid)
            served.first_question_seconds = (await time_calls(question_once, 1, warmup=0))[0]
            served.explicit = summary(await time_calls(explicit_once, searches, warmup=20))
            served.questions = summary(await time_calls(question_once, searches, warmup=20))
        served.rss_after = resident_bytes(pid)
    finally:
        memory.terminate()
    served.unanswered = frozenset(unanswered)
    served.not_understood = frozenset(not_understood)
    return served


def verdict(ratio: float, target: float) -> str:
    return f"{ratio:.1f}x (target <= {target:g}x: {'met' if ratio <= target else 'MISSED'})"


def search_report(
    store: SearchStore, echo: dict[str, float], served: Served, target: Target
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """The rows and verdicts of a replica's searches over `store`."""
    count = store.patterns
    assert served.explicit is not None
    assert served.questions is not None
    rows = {
        f"SearchPatterns, text + filter over {count}": served.explicit,
        f"SearchPatterns, questions over {count}": served.questions,
    }
    verdicts: dict[str, str] = {}
    for kind, figures in (("text + filter", served.explicit), ("questions", served.questions)):
        verdicts[f"{kind} p50 / echo p50"] = verdict(figures["p50_ms"] / echo["p50_ms"], target.p50)
        ratio = figures["p95_ms"] / echo["p95_ms"]
        verdicts[f"{kind} p95 / echo p95"] = (
            verdict(ratio, target.p95) if target.p95 is not None else f"{ratio:.1f}x"
        )
    verdicts["questions with no result"] = f"{len(served.unanswered)} of {len(QUESTIONS)}" + (
        f": {sorted(served.unanswered)}" if served.unanswered else ""
    )
    verdicts["questions understood without a filter (so text only)"] = (
        f"{len(served.not_understood)} of {len(QUESTIONS)}"
        + (f": {sorted(served.not_understood)}" if served.not_understood else "")
    )
    verdicts["cold first search (after SERVING; pays any index build)"] = (
        f"{served.cold_seconds:.2f} s (= {count / served.cold_seconds:.0f} patterns/s if it "
        f"builds an index of them); first understood question "
        f"{served.first_question_seconds:.2f} s"
    )
    verdicts["restarted replica SERVING after"] = (
        f"{served.ready_seconds:.1f} s over {count} patterns (target <= 30 s: "
        f"{'met' if served.ready_seconds <= 30 else 'MISSED'})"
    )
    verdicts["store file build rate"] = (
        f"{count / store.build_seconds:.0f} patterns/s ({store.build_seconds:.0f} s; "
        f"{store.build_note or 'SearchIndex.put, one transaction'})"
    )
    per_pattern = served.rss_after / count
    verdicts["memory per pattern (replica RSS after the searches)"] = (
        f"{per_pattern:.0f} B (target <= 4096: {'met' if per_pattern <= 4096 else 'MISSED'})"
    )
    verdicts["memory the first search added, per pattern"] = (
        f"{(served.rss_after_cold - served.rss_serving) / count:.0f} B"
    )
    verdicts["disk per pattern (store file: patterns, records, facts, text indexes)"] = (
        f"{store.file.stat().st_size / count:.0f} B"
    )
    return rows, verdicts
