"""The labelled search set's own measures and ground truth (tests/support/search_*.py),
checked on hand-made runs: the yardstick must mean what its docstrings say."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.runs.forms import to_form_value
from tests.support.search_corpus import Corpus, CorpusRun
from tests.support.search_quality import TOP, Answered
from tests.support.search_truth import (
    CAPABLE,
    CHEAP,
    PREMIUM,
    Question,
    anything,
    escalated,
    escalated_to,
    escalated_under,
    mentions,
    no_tier,
    only_tier,
    whole_team_on,
)

PROGRESSIVE = common_pb2.TIER_STRATEGY_PROGRESSIVE


def answered(ids: list[str], relevant: set[str]) -> Answered:
    return Answered(Question("k", "q", anything), "memory", tuple(ids), frozenset(relevant))


def agent(
    *tiers: common_pb2.Tier.ValueType, strategy: common_pb2.TierStrategy.ValueType = PROGRESSIVE
) -> executor_pb2.AgentResult:
    result = executor_pb2.AgentResult(role="r", tier_strategy=strategy)
    for number, tier in enumerate(tiers, start=1):
        result.attempts.add(number=number, tier=tier)
    if tiers:
        result.final_tier = tiers[-1]
    return result


def run_of(*agents: executor_pb2.AgentResult, **answers: str) -> CorpusRun:
    run = executor_pb2.Run(run_id="r1", template_id="t", agents=agents)
    for key, value in answers.items():
        run.answers[key].CopyFrom(to_form_value(value))
    return CorpusRun(run, "alice", False, common_pb2.TIER_STRATEGY_UNSPECIFIED)


def test_precision_counts_the_first_five_over_what_could_be_there() -> None:
    assert answered(["a", "x", "b", "y", "c", "d"], {"a", "b", "c", "d"}).precision == 3 / 4
    assert answered(["a", "b"], {"a", "b"}).precision == 1.0  # Fewer than five relevant.
    # Three results where ten relevant runs exist: the missing two count against it.
    assert answered(["a", "b", "c"], {f"{n}" for n in "abcdefghij"}).precision == 3 / 5
    assert answered([], {"a"}).precision == 0.0


def test_recall_counts_the_whole_page_and_empty_means_nothing_where_runs_match() -> None:
    page = answered(["x", "a", "y", "b"], {"a", "b", "c", "d"})
    assert page.recall == 0.5
    assert not page.empty
    assert answered([], {"a"}).empty


@given(
    st.lists(st.sampled_from("abcdefghijkl"), unique=True, max_size=12),
    st.sets(st.sampled_from("abcdefghijkl"), min_size=1),
)
def test_precision_and_recall_are_shares(ids: list[str], relevant: set[str]) -> None:
    answer = answered(ids, relevant)
    assert 0 <= answer.precision <= 1
    assert 0 <= answer.recall <= 1
    best = min(TOP, len(relevant))
    assert (answer.precision == 1) == (len(relevant.intersection(ids[:TOP])) == best)


def test_tiers_come_from_the_attempts() -> None:
    climbed = run_of(agent(CHEAP, CAPABLE, PREMIUM), agent(CHEAP), agent())  # One skipped.
    assert escalated(climbed)
    assert escalated_to(PREMIUM)(climbed)
    assert escalated_under(PROGRESSIVE)(climbed)
    assert not escalated_to(CAPABLE)(climbed)  # It went on past capable.
    assert not only_tier(CHEAP)(climbed)
    assert not no_tier(PREMIUM)(climbed)

    cheap = run_of(agent(CHEAP, strategy=common_pb2.TIER_STRATEGY_CHEAP_ONLY), agent())
    assert only_tier(CHEAP)(cheap)  # The skipped agent has no tier.
    assert no_tier(PREMIUM)(cheap)
    assert not escalated(cheap)
    assert not whole_team_on(common_pb2.TIER_STRATEGY_CHEAP_ONLY)(
        cheap
    )  # The other is progressive.
    assert not only_tier(CHEAP)(run_of(agent()))  # Nothing ran: not "only cheap".


def test_mentions_reads_names_through_dashes_underscores_and_slashes() -> None:
    run = run_of(target_path="src/harbor_sync", pull_request_url="acme/pollen#12")
    assert mentions("harbor-sync")(run)
    assert mentions("acme/pollen")(run)
    assert mentions("Pollen")(run)
    assert not mentions("harbor_syncer")(run)
    assert not mentions("poll")(run)  # Whole words only.


def test_a_question_counts_only_runs_its_asker_may_see() -> None:
    unset = common_pb2.TIER_STRATEGY_UNSPECIFIED
    mine = CorpusRun(executor_pb2.Run(run_id="m"), "alice", True, unset)
    theirs = CorpusRun(executor_pb2.Run(run_id="t"), "bob", True, unset)
    shared = CorpusRun(executor_pb2.Run(run_id="s"), "bob", False, unset)
    corpus = Corpus([mine, theirs, shared])
    assert Question("k", "q", anything).relevant(corpus) == {"m", "s"}
    assert Question("k", "q", anything, asker="bob").relevant(corpus) == {"t", "s"}
