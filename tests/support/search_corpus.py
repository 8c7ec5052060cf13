"""The labelled search corpus: real runs made through a real executor.

Both services run in this process with authentication on, as in production:
the memory service trusts the executor as a delegate, the executor knows its
callers (alice and bob, runners). Every run of `corpus_specs` is made with
RunWorkflow as its owner, with the simulated runner, so the patterns the
memory service holds and the run files the fallback reads are what real runs
leave. Who may see which run is read back from the executor (ListRuns as
each caller), not from the search under test.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.runs.forms import from_form_value, to_form_value
from tests.support.helpers import Answer, write_tokens_file
from tests.support.search_corpus_specs import OWNERS, RunSpec, corpus_specs
from tests.support.stack import Stack

EXECUTOR_SERVICE = "svc:executor"
NAMESPACE = "default"
# Runs made at once: the stores and the run files overlap their disk waits.
CONCURRENT_RUNS = 8
Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CorpusRun:
    """A finished run of the corpus, as the executor reported it, and who may see it."""

    run: executor_pb2.Run
    owner: str
    sensitive: bool
    strategy: common_pb2.TierStrategy.ValueType

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def template(self) -> str:
        return self.run.template_id

    @property
    def succeeded(self) -> bool:
        return self.run.status == executor_pb2.RUN_STATUS_SUCCEEDED

    @property
    def cost(self) -> float:
        return self.run.total_cost_usd

    @property
    def agent_count(self) -> int:
        return len(self.run.agents)

    def answer(self, question_id: str) -> Answer | None:
        """The resolved answer (defaults applied), or None if the form has no such question."""
        if question_id not in self.run.answers:
            return None
        return from_form_value(self.run.answers[question_id])

    def text(self, question_id: str) -> str:
        """A free-text answer, lower case; "" if none."""
        value = self.answer(question_id)
        return value.lower() if isinstance(value, str) else ""

    def chose(self, question_id: str, option: str) -> bool:
        """Whether a select answer is, or contains, the option."""
        value = self.answer(question_id)
        return value == option or (isinstance(value, list) and option in value)

    def number(self, question_id: str) -> float | None:
        value = self.answer(question_id)
        return value if isinstance(value, float) and not isinstance(value, bool) else None

    def ran(self) -> list[executor_pb2.AgentResult]:
        """The agents that made at least one attempt."""
        return [agent for agent in self.run.agents if agent.attempts]

    def attempt_tiers(self, agent: executor_pb2.AgentResult) -> list[int]:
        return [attempt.tier for attempt in agent.attempts]

    def visible_to(self, user: str) -> bool:
        return not self.sensitive or self.owner == user


@dataclass
class Corpus:
    """Every run of the corpus, by id."""

    runs: list[CorpusRun]

    def visible(self, user: str) -> list[CorpusRun]:
        return [run for run in self.runs if run.visible_to(user)]

    def by_id(self) -> dict[str, CorpusRun]:
        return {run.run_id: run for run in self.runs}


@dataclass
class LabelledStack:
    """The running pair holding the corpus, and a caller's metadata."""

    stack: Stack
    corpus: Corpus
    tokens: dict[str, str]

    def stub(self) -> executor_pb2_grpc.ExecutorServiceAsyncStub:
        return self.stack.executor_stub()

    def auth(self, user: str) -> Metadata:
        return (("authorization", f"Bearer {self.tokens[user]}"),)


def _request(spec: RunSpec) -> executor_pb2.RunWorkflowRequest:
    return executor_pb2.RunWorkflowRequest(
        template_id=spec.template_id,
        answers={key: to_form_value(value) for key, value in spec.answers.items()},
        seed=spec.seed,
        tier_strategy=spec.strategy,
    )


async def _make(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, spec: RunSpec, metadata: Metadata
) -> executor_pb2.Run:
    last = None
    async for event in stub.RunWorkflow(_request(spec), metadata=metadata, timeout=60):
        last = event
    assert last is not None, spec
    assert last.HasField("run_finished"), (spec, last)
    run = last.run_finished.run
    assert run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_STORED, (
        spec,
        run.pattern_delivery,
    )
    return run


async def _listed(stub: executor_pb2_grpc.ExecutorServiceAsyncStub, metadata: Metadata) -> set[str]:
    seen: set[str] = set()
    token = ""
    while True:
        page = await stub.ListRuns(
            executor_pb2.ListRunsRequest(page_size=100, page_token=token),
            metadata=metadata,
            timeout=30,
        )
        seen.update(run.run_id for run in page.runs)
        if not (token := page.next_page_token):
            return seen


async def _make_all(labelled: LabelledStack, specs: Iterable[RunSpec]) -> list[CorpusRun]:
    stub = labelled.stub()
    slots = asyncio.Semaphore(CONCURRENT_RUNS)

    async def one(spec: RunSpec) -> tuple[RunSpec, executor_pb2.Run]:
        async with slots:
            return spec, await _make(stub, spec, labelled.auth(spec.owner))

    made = await asyncio.gather(*(one(spec) for spec in specs))
    # A run another caller cannot list is SENSITIVE: the executor's own verdict.
    listed = {user: await _listed(stub, labelled.auth(user)) for user in OWNERS}
    runs = []
    for spec, run in made:
        assert run.run_id in listed[spec.owner], run.run_id
        others = [user for user in OWNERS if user != spec.owner]
        sensitive = any(run.run_id not in listed[user] for user in others)
        runs.append(CorpusRun(run, spec.owner, sensitive, spec.strategy))
    return runs


def _settings(root: Path) -> tuple[dict[str, object], dict[str, object], dict[str, str]]:
    """Memory and executor settings with authentication on, and every caller's token."""
    tokens = {user: secrets.token_urlsafe(24) for user in (EXECUTOR_SERVICE, *OWNERS)}
    memory_users = {EXECUTOR_SERVICE: ("writer", [NAMESPACE])} | {
        user: ("reader", [NAMESPACE]) for user in OWNERS
    }
    memory_tokens = write_tokens_file(
        root / "memory-tokens.yaml", memory_users, tokens, delegates=[EXECUTOR_SERVICE]
    )
    executor_users = {user: ("runner", [NAMESPACE]) for user in OWNERS}
    executor_tokens = write_tokens_file(root / "executor-tokens.yaml", executor_users, tokens)
    memory: dict[str, object] = {"tokens_file": memory_tokens}
    executor = {
        "tokens_file": executor_tokens,
        "memory_token": tokens[EXECUTOR_SERVICE],
        "memory_namespace": NAMESPACE,
        "runner": "simulated",
        "allowed_tier_strategies": {"runner": ["*"]},
        "runs_per_minute": 0,
        "runs_per_minute_per_caller": 0,
        "max_runs_in_flight_per_caller": 0,
        "memory_timeout_seconds": 20.0,
    }
    return memory, executor, tokens


@asynccontextmanager
async def labelled_stack(
    root: Path, specs: list[RunSpec] | None = None
) -> AsyncIterator[LabelledStack]:
    """Both services with authentication on, holding the corpus's runs."""
    memory, executor, tokens = _settings(root)
    stack = Stack(root, executor_overrides=executor, memory_overrides=memory)
    try:
        await stack.start_memory()
        await stack.start_executor()
        labelled = LabelledStack(stack, Corpus([]), tokens)
        labelled.corpus.runs = await _make_all(labelled, corpus_specs() if specs is None else specs)
        yield labelled
    finally:
        await stack.close()
