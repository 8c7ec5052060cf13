"""Query understanding of agents' tiers, escalation and tier strategies: each
phrasing's filter, what that filter selects, and that it means the same in
SQL as in Python."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.search.filter import compile_filter, matches
from memory_service.search.schema import PATTERN_SCHEMA, pattern_record
from memory_service.search.understanding import Understanding, understand
from tests.unit.memory.test_sql_filter import COMPILERS, database, patterns, sql_selects
from tests.unit.memory.test_understanding import NEUTRAL_WORDS, NOW, PHRASES, VOCABULARY

ONLY_CHEAP = 'agents.tier = "cheap" AND NOT agents.tier = "capable" AND NOT agents.tier = "premium"'
ONLY_CAPABLE = (
    'agents.tier = "capable" AND NOT agents.tier = "cheap" AND NOT agents.tier = "premium"'
)
ONLY_PREMIUM = (
    'agents.tier = "premium" AND NOT agents.tier = "cheap" AND NOT agents.tier = "capable"'
)


def run(query: str) -> Understanding:
    result = understand(query, VOCABULARY, NOW)
    compile_filter(result.filter_text, PATTERN_SCHEMA)
    return result


def understood(query: str) -> tuple[str, str]:
    result = run(query)
    return result.filter_text, result.remaining_query


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Some agent.
        ("any premium agent", 'agents.tier = "premium"'),
        ("with a premium model", 'agents.tier = "premium"'),
        ("some capable agents", 'agents.tier = "capable"'),
        ("agents on premium", 'agents.tier = "premium"'),
        ("premium agents", 'agents.tier = "premium"'),
        ("tier: cheap", 'agents.tier = "cheap"'),
        # No agent.
        ("no premium", 'NOT agents.tier = "premium"'),
        ("none premium", 'NOT agents.tier = "premium"'),
        ("not premium", 'NOT agents.tier = "premium"'),
        ("never used premium", 'NOT agents.tier = "premium"'),
        ("didn't use premium models", 'NOT agents.tier = "premium"'),
        ("no agent on premium", 'NOT agents.tier = "premium"'),
        ("none of the agents premium", 'NOT agents.tier = "premium"'),
        ("not a single agent used the premium tier", 'NOT agents.tier = "premium"'),
        ("zero premium agents", 'NOT agents.tier = "premium"'),
        # Every agent that ran.
        ("only cheap agents", ONLY_CHEAP),
        ("only cheap", ONLY_CHEAP),
        ("just cheap models", ONLY_CHEAP),
        ("cheap agents only", ONLY_CHEAP),
        ("all agents cheap", ONLY_CHEAP),
        ("all cheap agents", ONLY_CHEAP),
        ("all of the agents were cheap", ONLY_CHEAP),
        ("every agent on capable", ONLY_CAPABLE),
        ("each agent used capable", ONLY_CAPABLE),
        ("capable only", ONLY_CAPABLE),
        ("exclusively premium", ONLY_PREMIUM),
        ("nothing but premium agents", ONLY_PREMIUM),
        ("Every single agent ran on the PREMIUM tier", ONLY_PREMIUM),
        ("not only cheap agents", f"NOT ({ONLY_CHEAP})"),
        ("not all agents cheap", f"NOT ({ONLY_CHEAP})"),
        # How many.
        ("2 premium agents", "tier_distribution.premium = 2"),
        ("two premium agents", "tier_distribution.premium = 2"),
        ("at least one cheap agent", "tier_distribution.cheap >= 1"),
        ("more than 3 capable agents", "tier_distribution.capable > 3"),
        ("1+ premium agents", "tier_distribution.premium >= 1"),
        ("3 or more cheap agents", "tier_distribution.cheap >= 3"),
    ],
)
def test_tier_quantifiers(query: str, expected: str) -> None:
    assert understood(query) == (expected, "")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("escalated", "agents.escalated = true"),
        ("runs that escalated", "agents.escalated = true"),
        ("escalations", "agents.escalated = true"),
        ("with escalation", "agents.escalated = true"),
        ("escalated agents", "agents.escalated = true"),
        ("agents that escalated", "agents.escalated = true"),
        ("never escalated", "NOT agents.escalated = true"),
        ("not escalated", "NOT agents.escalated = true"),
        ("didn't escalate", "NOT agents.escalated = true"),
        ("did not escalate", "NOT agents.escalated = true"),
        ("without escalation", "NOT agents.escalated = true"),
        ("with no escalations", "NOT agents.escalated = true"),
        ("no escalation", "NOT agents.escalated = true"),
        ("unescalated", "NOT agents.escalated = true"),
        ("non-escalated", "NOT agents.escalated = true"),
        ("no agent escalated", "NOT agents.escalated = true"),
        ("escalated to premium", 'agents.escalated_to = "premium"'),
        ("escalating to the premium tier", 'agents.escalated_to = "premium"'),
        ("escalation up to capable", 'agents.escalated_to = "capable"'),
        ("escalated to premium agents", 'agents.escalated_to = "premium"'),
        ("premium escalations", 'agents.escalated_to = "premium"'),
        ("never escalated to premium", 'NOT agents.escalated_to = "premium"'),
        # A relative clause: the escalation's tier wins over the bare "escalated".
        ("no agent that escalated", "NOT agents.escalated = true"),
        ("agent that escalated to premium", 'agents.escalated_to = "premium"'),
        ("no agents which had escalated to premium", 'NOT agents.escalated_to = "premium"'),
        ("none of the agents who escalated to capable", 'NOT agents.escalated_to = "capable"'),
        ("not a single agent that escalated", "NOT agents.escalated = true"),
        ("not one agent that escalated to premium", 'NOT agents.escalated_to = "premium"'),
        ("no agent that was escalated to premium", 'NOT agents.escalated_to = "premium"'),
        ("no agents ever escalated to premium", 'NOT agents.escalated_to = "premium"'),
        ("no agent has ever escalated", "NOT agents.escalated = true"),
        (
            "no agent that escalated from cheap",
            'NOT (agents.escalation = "cheap_to_capable" OR '
            'agents.escalation = "cheap_to_premium")',
        ),
        (
            "any premium agent that escalated to premium",
            'agents.tier = "premium" AND agents.escalated_to = "premium"',
        ),
        (
            "escalated from cheap",
            'agents.escalation = "cheap_to_capable" OR agents.escalation = "cheap_to_premium"',
        ),
        ("escalated from capable", 'agents.escalation = "capable_to_premium"'),
        ("escalated from cheap to premium", 'agents.escalation = "cheap_to_premium"'),
        ("escalating from the cheap tier up to capable", 'agents.escalation = "cheap_to_capable"'),
        ("started at cheap", 'agents.first_tier = "cheap"'),
        ("starting on the capable tier", 'agents.first_tier = "capable"'),
        ("first tier premium", 'agents.first_tier = "premium"'),
    ],
)
def test_escalation(query: str, expected: str) -> None:
    assert understood(query) == (expected, "")


def _strategy(name: str) -> str:
    return f'agents.tier_strategy = "{name}"'


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("progressive escalation", _strategy("progressive")),
        ("progressive strategy", _strategy("progressive")),
        ("the progressive tier strategy", _strategy("progressive")),
        ("strategy: progressive", _strategy("progressive")),
        ("tier_strategy = progressive", _strategy("progressive")),
        ("escalating progressively", _strategy("progressive")),
        ("progressively escalated", _strategy("progressive")),
        ("cheap first", _strategy("progressive")),
        ("capable first", _strategy("capable_first")),
        ("capable-first strategy", _strategy("capable_first")),
        ("premium only", _strategy("premium_only")),
        ("premium only strategy", _strategy("premium_only")),
        ("premium_only", _strategy("premium_only")),
        ("cheap-only agents", _strategy("cheap_only")),
        ("learned strategy", _strategy("learned")),
        ("learned tiers", _strategy("learned")),
        (
            "only progressive",
            'agents.tier_strategy = "progressive" AND NOT agents.tier_strategy != "progressive"',
        ),
        (
            "all agents progressive",
            'agents.tier_strategy = "progressive" AND NOT agents.tier_strategy != "progressive"',
        ),
        (
            "every agent on premium only",
            'agents.tier_strategy = "premium_only" AND NOT agents.tier_strategy != "premium_only"',
        ),
        ("no premium only", f"NOT {_strategy('premium_only')}"),
        ("no premium only strategy", f"NOT {_strategy('premium_only')}"),
        ("without progressive escalation", f"NOT {_strategy('progressive')}"),
        ("not capable first", f"NOT {_strategy('capable_first')}"),
    ],
)
def test_tier_strategies(query: str, expected: str) -> None:
    assert understood(query) == (expected, "")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("failed agents", "agents.success = false"),
        ("an agent failed", "agents.success = false"),
        ("any agent failed", "agents.success = false"),
        ("no agent failed", "NOT agents.success = false"),
        ("none of the agents failed", "NOT agents.success = false"),
        ("all agents succeeded", "agents.success = true AND NOT agents.success = false"),
        ("every agent passed", "agents.success = true AND NOT agents.success = false"),
        ("all agents failed", "NOT agents.success = true AND agents.success = false"),
    ],
)
def test_agent_outcomes(query: str, expected: str) -> None:
    assert understood(query) == (expected, "")


@pytest.mark.parametrize(
    "query", ["progressive", "learned", "premium", "a capable team", "escalate", "learning rate"]
)
def test_words_without_context_stay_free_text(query: str) -> None:
    assert understood(query) == ("", query)


def test_phrases_in_a_sentence() -> None:
    result = run("failed security audits last week with only cheap agents that never escalated")
    assert result.filter_text == (
        'success = false AND template_id = "security_audit" '
        f'AND create_time >= "2026-03-11T14:30:15Z" AND {ONLY_CHEAP} '
        "AND NOT agents.escalated = true"
    )
    assert result.remaining_query == ""  # "security audits" names the template.
    assert run("premium agents that failed").filter_text == (
        'agents.tier = "premium" AND success = false'
    )


# --- what the filters select -----------------------------------------------------------


def agent(
    tier: str,
    first: str | None = None,
    strategy: str = "PROGRESSIVE",
    success: bool = True,
) -> dict[str, Any]:
    """An agent's record as pattern_record makes it (a skipped one: tier UNSPECIFIED)."""
    first = first or tier
    record: dict[str, Any] = {
        "tier": tier,
        "first_tier": first,
        "tier_strategy": strategy,
        "success": success,
    }
    order = ("UNSPECIFIED", "CHEAP", "CAPABLE", "PREMIUM")
    record["escalated"] = order.index(tier) > order.index(first)
    if record["escalated"]:
        record |= {"escalated_to": tier, "escalation": f"{first}_TO_{tier}"}
    return record


def selects(query: str, *agents: dict[str, Any]) -> bool:
    tree = compile_filter(run(query).filter_text, PATTERN_SCHEMA)
    return matches(tree, {"agents": list(agents)}, PATTERN_SCHEMA)


SKIPPED = agent("UNSPECIFIED", "UNSPECIFIED", success=False)


def test_only_counts_the_agents_that_ran() -> None:
    assert selects("only cheap agents", agent("CHEAP"), agent("CHEAP"), SKIPPED)
    assert not selects("only cheap agents", agent("CHEAP"), agent("CAPABLE", "CHEAP"))
    assert not selects("only cheap agents", SKIPPED)  # Nothing ran at all.
    assert selects("every agent on premium", agent("PREMIUM", "CHEAP"), agent("PREMIUM"))


def test_escalated_to_premium_is_one_agent_that_escalated() -> None:
    # One agent escalated (to capable), another ran at premium from the start:
    # `agents.escalated = true AND agents.tier = "premium"` would match, wrongly.
    apart = (agent("CAPABLE", "CHEAP"), agent("PREMIUM", strategy="PREMIUM_ONLY"))
    assert not selects("escalated to premium", *apart)
    assert selects("escalated to premium", agent("PREMIUM", "CAPABLE"), agent("CHEAP"))
    assert selects("escalated from cheap to premium", agent("PREMIUM", "CHEAP"))
    assert not selects("escalated from cheap to premium", *apart, agent("PREMIUM", "CAPABLE"))
    assert selects("never escalated", agent("PREMIUM", strategy="PREMIUM_ONLY"), SKIPPED)
    assert not selects("never escalated", agent("CHEAP"), agent("CAPABLE", "CHEAP"))


def test_every_agent_on_a_strategy() -> None:
    progressive = agent("CAPABLE", "CHEAP")
    assert selects("only progressive", progressive, agent("CHEAP"))
    assert not selects("only progressive", progressive, agent("CHEAP", strategy="CHEAP_ONLY"))
    assert selects("premium only strategy", progressive, agent("PREMIUM", strategy="PREMIUM_ONLY"))


# --- properties ----------------------------------------------------------------------------

WORDS = (
    *("only", "all", "every", "each", "any", "some", "no", "none", "not", "never", "without"),
    *("cheap", "capable", "premium", "tier", "agents", "agent", "models", "escalated"),
    *("escalation", "escalate", "to", "from", "up", "first", "progressive", "strategy"),
    *("learned", "started", "at", "on", "the", "of", "didn't", "did", "with", "failed"),
    *("succeeded", "2", "one", "more", "than", "+", "-", "_", "premium_only", "older", "ago"),
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # A number that agents follow counts them, even after a question's word.
        ("failed 2 premium agents", "success = false AND tier_distribution.premium = 2"),
        ("failed 2+ cheap agents", "success = false AND tier_distribution.cheap >= 2"),
        ("failed 3 or more agents", "success = false AND agent_count >= 3"),
        # With "tier" between, or models for agents.
        (
            "failed runs with 2 premium tier agents",
            "success = false AND tier_distribution.premium = 2",
        ),
        ("failed 2 premium-tier agents", "success = false AND tier_distribution.premium = 2"),
        ("2 cheap tier agents", "tier_distribution.cheap = 2"),
        # Models are not counted (a version number is no count), nor taken for
        # an answer to "fail on CVSS".
        ("failed 2 premium models", 'success = false AND agents.tier = "premium"'),
        ("gpt 4 premium models", 'agents.tier = "premium"'),
        ("at least 3 capable tier agents", "tier_distribution.capable >= 3"),
        # Said with a link or a comparison, the number stays the question's.
        ("cvss: 7 premium agents", 'form_responses.fail_on_cvss = 7 AND agents.tier = "premium"'),
        ("cvss 7 or more", "form_responses.fail_on_cvss >= 7"),
    ],
)
def test_a_number_before_agents_counts_them(query: str, expected: str) -> None:
    assert understand(query, VOCABULARY, NOW).filter_text == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=12))
def test_any_tier_wording_understands_to_a_filter_that_compiles(words: list[str]) -> None:
    query = " ".join(words)
    result = understand(query, VOCABULARY, NOW)
    compile_filter(result.filter_text, PATTERN_SCHEMA)
    assert len(result.remaining_query) <= len(query)


# Phrasings of this module, to be understood whatever stands next to them.
TIER_PHRASES = (
    *("only cheap agents", "all agents cheap", "every agent on capable", "no premium"),
    *("any premium agent", "none premium", "escalated to premium", "never escalated"),
    *("progressive escalation", "premium only strategy", "cheap first", "2 premium agents"),
    *("escalated from cheap", "started at cheap", "without escalation", "capable first"),
    *("failed agents", "no agent failed", "all agents succeeded", "didn't succeed"),
    *("older than two weeks", "before yesterday"),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from((*PHRASES, *TIER_PHRASES)).map(lambda p: ("phrase", p))
        | st.sampled_from(NEUTRAL_WORDS).map(lambda w: ("word", w)),
        max_size=8,
    )
)
def test_tier_phrasings_amid_others_are_understood(items: list[tuple[str, str]]) -> None:
    result = understand(" ".join(text for _, text in items), VOCABULARY, NOW)
    consumed = [note.split('" -> ')[0][1:].lower() for note in result.interpretations]
    for kind, text in items:
        if kind == "phrase":
            assert any(text.lower() in phrase for phrase in consumed), (text, consumed)


_QUERIES = st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(patterns(), min_size=1, max_size=6), _QUERIES)
def test_understood_filters_mean_the_same_in_sql(
    rows: list[memory_pb2.Pattern], query: str
) -> None:
    tree = compile_filter(understand(query, VOCABULARY, NOW).filter_text, PATTERN_SCHEMA)
    db = database(rows)
    expected = {n for n, p in enumerate(rows) if matches(tree, pattern_record(p), PATTERN_SCHEMA)}
    for name, compiler in COMPILERS.items():
        assert sql_selects(db, compiler, tree) == expected, name


def test_a_pattern_agent_records_its_escalation() -> None:
    pattern = memory_pb2.Pattern()
    pattern.agents.add(
        tier=common_pb2.TIER_PREMIUM,
        first_tier=common_pb2.TIER_CHEAP,
        tier_strategy=common_pb2.TIER_STRATEGY_PROGRESSIVE,
        attempt_count=3,
    )
    pattern.agents.add(tier=common_pb2.TIER_CAPABLE, first_tier=common_pb2.TIER_CAPABLE)
    pattern.agents.add(tier=common_pb2.TIER_PREMIUM, attempt_count=2)  # Before first_tier.
    pattern.agents.add(attempt_count=0)  # Skipped.
    escalated, stayed, older, skipped = pattern_record(pattern)["agents"]
    assert {
        key: escalated[key]
        for key in ("tier_strategy", "first_tier", "escalated", "escalated_to", "escalation")
    } == {
        "tier_strategy": "PROGRESSIVE",
        "first_tier": "CHEAP",
        "escalated": True,
        "escalated_to": "PREMIUM",
        "escalation": "CHEAP_TO_PREMIUM",
    }
    assert (stayed["escalated"], "escalated_to" in stayed) == (False, False)
    assert (stayed["tier_strategy"], older["first_tier"]) == ("UNSPECIFIED", "UNSPECIFIED")
    # Written before first_tier: its attempts after the first were escalations.
    assert (older["escalated"], older["escalated_to"], "escalation" in older) == (
        True,
        "PREMIUM",
        False,
    )
    assert (skipped["escalated"], skipped["tier"]) == (False, "UNSPECIFIED")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from((*WORDS, *TIER_PHRASES, *PHRASES)), min_size=1, max_size=8),
    st.data(),
)
def test_whitespace_between_words_changes_nothing(words: list[str], data: st.DataObject) -> None:
    """Tabs, newlines or doubled spaces between (and inside) phrases read as one space."""
    single = " ".join(words)
    gaps = st.sampled_from(("  ", "\t", "\n", " \t ", "\u00a0"))
    spaced = "".join(character if character != " " else data.draw(gaps) for character in single)
    expected = understand(single, VOCABULARY, NOW)
    got = understand(spaced, VOCABULARY, NOW)
    assert (got.filter_text, got.interpretations) == (
        expected.filter_text,
        expected.interpretations,
    )
    assert got.remaining_query.split() == expected.remaining_query.split()
