"""Ground truth over a corpus run's own fields, in plain Python.

Deliberately not the filter language nor the search code: a question's
relevant runs are decided here, from the executor's Run (template, status,
cost, agents and their attempts, resolved answers) and who owns it, so the
yardstick does not share a mistake with what it measures.

Tiers are read from the agents' attempts: an agent's tier is the tier of its
last attempt (escalation only goes up, so that is the highest it reached);
an agent escalated when it made more than one attempt. Agents that never
ran (skipped) have no tier.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from tests.support.search_corpus import Corpus, CorpusRun
from tests.support.search_corpus_specs import ASKER

Truth = Callable[[CorpusRun], bool]
CHEAP, CAPABLE, PREMIUM = common_pb2.TIER_CHEAP, common_pb2.TIER_CAPABLE, common_pb2.TIER_PREMIUM
PUBLISH, REVIEW, DOCS = "python_package_publish", "code_review", "documentation"
RELEASE, AUDIT, COVERAGE = "release_prep", "security_audit", "test_coverage_boost"
# The free-text questions of every template: where names and versions live.
TEXT_QUESTIONS = (
    "package_name",
    "pull_request_url",
    "project_name",
    "repository",
    "release_version",
    "release_branch",
    "target_path",
)


def every(*truths: Truth) -> Truth:
    return lambda run: all(truth(run) for truth in truths)


def either(*truths: Truth) -> Truth:
    return lambda run: any(truth(run) for truth in truths)


def negated(truth: Truth) -> Truth:
    return lambda run: not truth(run)


def template(*ids: str) -> Truth:
    return lambda run: run.template in ids


def succeeded(run: CorpusRun) -> bool:
    return run.succeeded


def failed(run: CorpusRun) -> bool:
    return run.run.status == executor_pb2.RUN_STATUS_FAILED


def anything(run: CorpusRun) -> bool:
    return True


def chose(question_id: str, option: str) -> Truth:
    """A select answer is (single) or includes (multi) the option."""
    return lambda run: run.chose(question_id, option)


def flag(question_id: str, value: bool) -> Truth:
    return lambda run: run.answer(question_id) is value


def number(question_id: str, test: Callable[[float], bool]) -> Truth:
    def holds(run: CorpusRun) -> bool:
        value = run.number(question_id)
        return value is not None and test(value)

    return holds


def tested_coverage(test: Callable[[float], bool]) -> Truth:
    """Either form's test coverage question (not the docstring coverage one)."""
    return either(number("test_coverage_required", test), number("test_coverage_target", test))


def _spaced(text: str) -> str:
    # "harbor-sync", "src/harbor_sync" and "acme/harbor-sync#4" all name harbor sync.
    return " ".join(re.split(r"[\s\-_/#.:]+", text.lower()))


def mentions(words: str) -> Truth:
    """A free-text answer contains the words, in order (any case; dashes,
    underscores and slashes count as spaces)."""
    wanted = _spaced(words)
    return lambda run: any(
        f" {wanted} " in f" {_spaced(run.text(question))} " for question in TEXT_QUESTIONS
    )


def cost(test: Callable[[float], bool]) -> Truth:
    return lambda run: test(run.cost)


def agents(test: Callable[[int], bool]) -> Truth:
    return lambda run: test(run.agent_count)


def agent(role: str, status: executor_pb2.AgentStatus.ValueType) -> Truth:
    return lambda run: any(a.role == role and a.status == status for a in run.run.agents)


def any_skipped(run: CorpusRun) -> bool:
    return any(a.status == executor_pb2.AGENT_STATUS_SKIPPED for a in run.run.agents)


def any_tier(tier: common_pb2.Tier.ValueType) -> Truth:
    """Some agent ran at the tier (its last attempt's)."""
    return lambda run: any(a.final_tier == tier for a in run.ran())


def only_tier(tier: common_pb2.Tier.ValueType) -> Truth:
    """Every agent that ran, ran at the tier, and at least one ran."""
    return lambda run: bool(run.ran()) and all(a.final_tier == tier for a in run.ran())


def no_tier(tier: common_pb2.Tier.ValueType) -> Truth:
    return negated(any_tier(tier))


def escalated(run: CorpusRun) -> bool:
    """Some agent needed more than one attempt (each goes one tier up)."""
    return any(len(a.attempts) > 1 for a in run.run.agents)


def escalated_to(tier: common_pb2.Tier.ValueType) -> Truth:
    """Some agent escalated and ended at the tier."""
    return lambda run: any(len(a.attempts) > 1 and a.final_tier == tier for a in run.run.agents)


def escalated_under(strategy: common_pb2.TierStrategy.ValueType) -> Truth:
    """Some agent following the strategy escalated ("progressive escalation")."""
    return lambda run: any(
        len(a.attempts) > 1 and a.tier_strategy == strategy for a in run.run.agents
    )


def whole_team_on(strategy: common_pb2.TierStrategy.ValueType) -> Truth:
    """The run's tier strategy: every agent followed it (a run-wide choice;
    no template gives all its roles one strategy)."""
    return lambda run: all(a.tier_strategy == strategy for a in run.run.agents)


def sensitive_of(owner: str) -> Truth:
    return lambda run: run.sensitive and run.owner == owner


@dataclass(frozen=True)
class Question:
    """A labelled question: what a user types (and maybe an explicit filter),
    and which runs answer it. Relevant runs are those the truth holds for
    that the asker may see."""

    kind: str
    text: str
    truth: Truth
    filter: str = ""
    asker: str = ASKER

    def relevant(self, corpus: Corpus) -> set[str]:
        return {run.run_id for run in corpus.visible(self.asker) if self.truth(run)}

    def label(self) -> str:
        shown = self.text if not self.filter else f"{self.text} | filter: {self.filter}"
        return shown if self.asker == ASKER else f"{shown} (asked by {self.asker})"


def about(kind: str, text: str, template_id: str, *truths: Truth, asker: str = ASKER) -> Question:
    """A question about runs of one template that the truths also hold for."""
    return Question(kind, text, every(template(template_id), *truths), asker=asker)
