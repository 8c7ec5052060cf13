"""The learner: analytics, recommendations and the learned strategy, over the history.

It connects the pure computations of this package to the executor's run
files (through RunHistory), the memory service (similar runs, a session's
recent choices) and the local index (similar runs while memory is down).

What shows a run's content to a caller (suggested answers, similar runs)
reads only the runs that caller may see: another owner's SENSITIVE runs are
left out (visibility.py). Analytics and tier statistics count every run of
the namespace: they show counts, rates and costs, and the most frequent agent
errors (PII-scrubbed; no part of a run's pattern, so not what makes a run
SENSITIVE), never a run's answers or summary.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import grpc

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service.convert.learning import analytics_to_proto
from executor_service.learning.analytics import analyse
from executor_service.learning.facts import RunFact
from executor_service.learning.history import RunHistory
from executor_service.learning.recommend import Policy, TierChoice, recommend_tier
from executor_service.learning.requests import analytics_window
from executor_service.learning.suggest import (
    Suggestion,
    run_suggestions,
    session_suggestions,
    similarity,
)
from executor_service.learning.tally import role_tallies
from executor_service.memory.client import UNREACHABLE_CODES, MemoryClient
from executor_service.memory.local_index import LocalIndex
from executor_service.runs.composition import PlannedAgent
from executor_service.runs.forms import from_form_value
from executor_service.runs.store import RunStore
from executor_service.runs.visibility import Viewer
from executor_service.settings import ExecutorSettings
from executor_service.templates.catalog import Catalog
from executor_service.templates.models import Answer, Template
from memory_service.search.filter import compile_filter
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.security.identity import Principal
from memory_service.servicekit.errors import not_found

log = logging.getLogger("attune.executor.learning")

# Candidates for similar runs: the template's newest runs, as many as one
# memory search page holds; the most similar of them are returned.
SIMILAR_CANDIDATES = 100
SIMILAR_RUNS = 5


@dataclass(frozen=True)
class SimilarRuns:
    """The most similar past runs' patterns with their similarity, and who answered."""

    found: list[tuple[memory_pb2.Pattern, float]]
    source: executor_pb2.SearchSource.ValueType
    degraded_reason: str = ""


@dataclass(frozen=True)
class Recommendations:
    """Everything GetRecommendations reports."""

    tiers: list[TierChoice]
    similar: SimilarRuns
    suggestions: list[Suggestion]


class Learner:
    """Learns from the executor's finished runs."""

    def __init__(
        self,
        settings: ExecutorSettings,
        catalog: Catalog,
        runs: RunStore,
        memory: MemoryClient,
        local_index: LocalIndex,
    ) -> None:
        self.history = RunHistory(runs)
        self.policy = Policy(
            target=settings.recommendation_target_success,
            min_runs=settings.recommendation_min_runs,
        )
        self._catalog = catalog
        self._memory = memory
        self._local_index = local_index

    def record(self, run: executor_pb2.Run) -> None:
        """Learns from a run that has just finished and is on disk."""
        self.history.record(run)

    async def analytics(
        self, request: executor_pb2.GetAnalyticsRequest, principal: Principal
    ) -> executor_pb2.GetAnalyticsResponse:
        """GetAnalytics: INVALID_ARGUMENT for a bad window, NOT_FOUND for a
        template id that neither the catalog nor any run knows.

        Over every run, SENSITIVE ones of any owner included: aggregates,
        never a run's answers (see the module's docstring). Failure texts are
        free text: only from runs `principal` may see.
        """
        window = analytics_window(request)
        await self.history.ready()
        runs = self.history.runs()
        template_id = window.template_id
        # A template removed from the catalog still has its runs to analyse.
        if (
            template_id
            and self._catalog.get(template_id) is None
            and not any(run.template_id == template_id for run in runs)
        ):
            known = ", ".join(template.id for template in self._catalog.all())
            message = f"no template or run has id {template_id!r}; known: {known}"
            raise not_found("template", template_id, message)
        viewer = Viewer.of(principal)
        await self._local_index.catch_up()

        def shows_text(run: RunFact) -> bool:
            # A run the index has not met yet (another replica's) may be SENSITIVE.
            return self._local_index.met(run.run_id) and self._local_index.visible(
                run.run_id, viewer
            )

        # Thousands of runs take some milliseconds: off the event loop.
        return analytics_to_proto(await asyncio.to_thread(analyse, runs, window, shows_text))

    async def tier_choices(
        self, template_id: str, team: Sequence[PlannedAgent], runner: str
    ) -> list[TierChoice]:
        """One recommendation per agent, from the template's runs by that runner.

        Only the same runner's runs are evidence: how simulated attempts went
        says nothing about a real model, and the other way round. Every
        owner's runs count: a tally of attempts shows no run's content.
        """
        await self.history.ready()
        evidence = self.history.evidence(template_id, runner)
        return [
            recommend_tier(
                agent.role, agent.strategy, role_tallies(evidence, agent.role), self.policy, runner
            )
            for agent in team
        ]

    async def learned_team(
        self, template_id: str, team: Sequence[PlannedAgent], runner: str
    ) -> list[PlannedAgent]:
        """The team under the learned strategy: each role with a trusted tier
        starts there; the others keep the template's own strategy."""
        choices = await self.tier_choices(template_id, team, runner)
        return [
            agent if choice.tier is None else replace(agent, start_tier=choice.tier)
            for agent, choice in zip(team, choices, strict=True)
        ]

    async def recommend(
        self,
        template: Template,
        answered: Sequence[str],
        resolved: Mapping[str, Answer],
        team: Sequence[PlannedAgent],
        runner: str,
        session_id: str,
        on_behalf_of: str | None,
        principal: Principal,
        remaining: float | None,
    ) -> Recommendations:
        """Tiers, similar runs and suggested answers for a form being filled in,
        from the runs `principal` may see.

        The similar-runs search raises grpc.aio.AioRpcError when the memory
        service answers with an error (a refusal of the caller's credentials
        among them); while it is unreachable, the local index answers.
        """
        viewer = Viewer.of(principal)
        similar, choices = await asyncio.gather(
            self._similar(template.id, resolved, on_behalf_of, viewer, remaining),
            self._session_choices(session_id, template.id, on_behalf_of, remaining),
        )
        tiers = await self.tier_choices(template.id, team, runner)
        suggestions = session_suggestions(template, choices or {}, answered)
        # Suggested answers are other runs' answers: only from runs the caller
        # may see. Another replica's run the index has not met yet may be
        # SENSITIVE: left out until it has (within CATCH_UP_SECONDS).
        await self._local_index.catch_up()
        visible = [
            run
            for run in self.history.runs()
            if self._local_index.met(run.run_id) and self._local_index.visible(run.run_id, viewer)
        ]
        suggestions += run_suggestions(template, visible, answered, self.policy.min_runs)
        return Recommendations(tiers, similar, suggestions)

    async def _similar(
        self,
        template_id: str,
        resolved: Mapping[str, Answer],
        on_behalf_of: str | None,
        viewer: Viewer,
        remaining: float | None,
    ) -> SimilarRuns:
        # Template ids are [a-z0-9_]: nothing to escape in the literal.
        filter_text = f'template_id = "{template_id}"'
        try:
            response = await self._memory.search(
                memory_pb2.SearchPatternsRequest(
                    filter=filter_text,
                    page_size=SIMILAR_CANDIDATES,
                    disable_query_understanding=True,
                ),
                remaining,
                on_behalf_of=on_behalf_of,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() not in UNREACHABLE_CODES:
                raise
            condition = compile_filter(filter_text, PATTERN_SCHEMA)
            await self._local_index.catch_up()  # Other replicas' runs too.
            hits = self._local_index.search([], condition, SIMILAR_CANDIDATES, viewer=viewer)
            # The details say whether a deadline passed or the breaker is open.
            reason = (
                f"memory service unreachable ({error.code().name}: {error.details()}); "
                "similar runs answered from local run files"
            )
            return SimilarRuns(
                _most_similar(resolved, [hit.pattern for hit in hits]),
                executor_pb2.SEARCH_SOURCE_LOCAL_FILES,
                reason,
            )
        patterns = [result.pattern for result in response.results]
        return SimilarRuns(_most_similar(resolved, patterns), executor_pb2.SEARCH_SOURCE_MEMORY)

    async def _session_choices(
        self, session_id: str, template_id: str, on_behalf_of: str | None, remaining: float | None
    ) -> Mapping[str, Answer] | None:
        """The session's recent choices; None when there are none or memory
        cannot tell: suggestions are a convenience, never a reason to fail."""
        if not session_id:
            return None
        try:
            # The caller's own choices only: memory keeps each user's entries
            # of a session apart, so a session id names nothing of anyone else's.
            return await self._memory.recent_choices(
                session_id, template_id, remaining, on_behalf_of=on_behalf_of
            )
        except grpc.aio.AioRpcError as error:
            log.warning(
                "session choices unavailable for suggestions",
                extra={"reason": f"{error.code().name}: {error.details()}"},
            )
            return None


def _most_similar(
    resolved: Mapping[str, Answer], patterns: Sequence[memory_pb2.Pattern]
) -> list[tuple[memory_pb2.Pattern, float]]:
    """The most similar patterns, most similar first; newest first among equals
    (the candidates come newest first and the sort is stable)."""
    scored = [(pattern, similarity(resolved, _answers(pattern))) for pattern in patterns]
    scored.sort(key=lambda item: -item[1])
    return [(pattern, score) for pattern, score in scored if score > 0][:SIMILAR_RUNS]


def _answers(pattern: memory_pb2.Pattern) -> dict[str, Answer]:
    return {
        question_id: answer
        for question_id, value in pattern.form_responses.items()
        if (answer := from_form_value(value)) is not None
    }
