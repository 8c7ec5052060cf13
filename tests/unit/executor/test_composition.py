"""Rule semantics and team composition."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor_service.runs.composition import PlannedAgent, compose_team, rule_applies
from executor_service.templates.catalog import load_builtin
from executor_service.templates.models import (
    TIER_LADDERS,
    AgentRule,
    Answer,
    CostRange,
    Question,
    QuestionType,
    Template,
    TierStrategy,
)
from tests.support.helpers import PUBLISH_DEFAULT_ANSWERS

OPTIONS = ["a", "b", "c", "d", "e"]


def rule(role: str = "agent", **fields: Any) -> AgentRule:
    return AgentRule(role=role, success_criteria=["done"], **fields)


def template(rules: list[AgentRule], questions: list[Question] | None = None) -> Template:
    return Template(
        id="tiny",
        name="Tiny",
        description="A template for tests.",
        version="1",
        estimated_cost=CostRange(min_usd=0, max_usd=1),
        estimated_duration_seconds=1,
        questions=questions or [Question(id="q", text="q?", type=QuestionType.TEXT)],
        agent_rules=rules,
    )


def builtin() -> Template:
    found = load_builtin().get("python_package_publish")
    assert found is not None
    return found


def by_role(team: list[PlannedAgent]) -> dict[str, PlannedAgent]:
    return {agent.role: agent for agent in team}


# --- rule_applies: properties --------------------------------------------------------------

chosen_options = st.lists(st.sampled_from(OPTIONS), unique=True, max_size=len(OPTIONS))


@settings(max_examples=200)
@given(chosen=chosen_options, required=st.sampled_from(OPTIONS))
def test_multi_select_single_required_value(chosen: list[str], required: str) -> None:
    assert rule_applies(rule(when={"q": required}), {"q": chosen}) == (required in chosen)


@settings(max_examples=200)
@given(chosen=chosen_options, required=st.lists(st.sampled_from(OPTIONS), min_size=1))
def test_multi_select_required_list_means_any_overlap(
    chosen: list[str], required: list[str]
) -> None:
    applies = rule_applies(rule(when={"q": required}), {"q": chosen})
    assert applies == bool(set(chosen) & set(required))


scalars = st.one_of(
    st.text(max_size=5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-3, 3).map(float),
    st.booleans(),
)


def same_scalar(a: Answer, b: Answer) -> bool:
    """Reference equality: booleans only equal booleans."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


@settings(max_examples=200)
@given(answer=scalars, required=scalars)
def test_scalar_rule_is_equality(answer: Answer, required: Answer) -> None:
    assert rule_applies(rule(when={"q": required}), {"q": answer}) == same_scalar(answer, required)


@settings(max_examples=200)
@given(
    answer=st.one_of(st.sampled_from(OPTIONS), scalars),
    required=st.lists(st.one_of(st.sampled_from(OPTIONS), st.text(max_size=3)), min_size=1),
)
def test_scalar_with_required_list_means_one_of(answer: Answer, required: list[str]) -> None:
    applies = rule_applies(rule(when={"q": required}), {"q": answer})
    assert applies == any(same_scalar(answer, value) for value in required)


@settings(max_examples=200)
@given(answer=st.sampled_from(OPTIONS), required=st.lists(st.sampled_from(OPTIONS), min_size=1))
def test_single_select_with_required_list_means_one_of(answer: str, required: list[str]) -> None:
    assert rule_applies(rule(when={"q": required}), {"q": answer}) == (answer in required)


@settings(max_examples=100)
@given(
    answers=st.fixed_dictionaries({"x": st.booleans(), "y": st.sampled_from(OPTIONS)}),
    want_x=st.booleans(),
    want_y=st.sampled_from(OPTIONS),
)
def test_every_condition_must_hold(answers: dict[str, Answer], want_x: bool, want_y: str) -> None:
    applies = rule_applies(rule(when={"x": want_x, "y": want_y}), answers)
    assert applies == (answers["x"] is want_x and answers["y"] == want_y)


@pytest.mark.parametrize(
    ("answer", "required"),
    [(True, 1.0), (1.0, True), (False, 0.0), (0.0, False)],
)
def test_bool_never_equals_a_number(answer: Answer, required: Answer) -> None:
    assert not rule_applies(rule(when={"q": required}), {"q": answer})


def test_numbers_compare_by_value() -> None:
    # 80 and 80.0 are the same answer.
    assert rule_applies(rule(when={"q": 80}), {"q": 80.0})
    assert not rule_applies(rule(when={"q": 80}), {"q": 80.5})


def test_rule_without_conditions_always_applies() -> None:
    assert rule_applies(rule(), {})
    assert rule_applies(rule(), {"q": "anything"})


def test_missing_answer_never_holds() -> None:
    assert not rule_applies(rule(when={"q": "x"}), {})
    assert not rule_applies(rule(when={"q": False}), {})
    assert not rule_applies(rule(when={"q": ["x", "y"]}), {})


# --- compose_team ------------------------------------------------------------------------


def default_team(**overrides: Answer) -> list[PlannedAgent]:
    answers = {**PUBLISH_DEFAULT_ANSWERS, **overrides}
    return compose_team(builtin(), answers)


def test_default_team_of_the_builtin_template() -> None:
    team = default_team()
    assert [agent.role for agent in team] == [
        "test_runner",
        "type_checker",
        "linter",
        "version_manager",
        "package_builder",
        "changelog_updater",
        "publisher",
    ]
    agents = by_role(team)
    assert agents["publisher"].depends_on == ("package_builder",)
    assert agents["changelog_updater"].depends_on == ("version_manager",)
    assert agents["publisher"].stage == agents["package_builder"].stage + 1
    assert agents["changelog_updater"].stage == agents["version_manager"].stage + 1
    assert agents["test_runner"].config == {"coverage_threshold": "80"}
    assert agents["version_manager"].config == {"bump": "patch", "tag": "true"}
    assert agents["publisher"].config == {"target": "testpypi", "package": "demo"}
    assert agents["type_checker"].strategy is TierStrategy.CHEAP_ONLY
    assert agents["publisher"].tiers == TIER_LADDERS[TierStrategy.CAPABLE_FIRST]
    assert agents["test_runner"].success_criteria == (
        "all tests pass",
        "coverage meets the required minimum",
    )


def test_team_is_in_stage_order_and_every_dependency_comes_first() -> None:
    team = default_team(quality_checks=["mypy", "ruff", "bandit", "docs_build"])
    stages = [agent.stage for agent in team]
    assert stages == sorted(stages)
    position = {agent.role: index for index, agent in enumerate(team)}
    for agent in team:
        for dependency in agent.depends_on:
            assert position[dependency] < position[agent.role]
    assert "security_auditor" in position
    assert "docs_builder" in position


def test_dependency_on_absent_role_is_dropped() -> None:
    team = by_role(default_team(version_bump="none", publish_target="none"))
    assert "version_manager" not in team
    assert "publisher" not in team
    assert team["changelog_updater"].depends_on == ()
    assert team["changelog_updater"].stage == 0


def test_multi_select_rules_pick_the_quality_agents() -> None:
    team = by_role(default_team(quality_checks=["dependency_audit"], has_tests=False))
    assert "security_auditor" in team
    assert "type_checker" not in team
    assert "linter" not in team
    assert "test_runner" not in team
    assert "security_auditor" not in by_role(default_team(quality_checks=["mypy"]))


def test_number_config_renders_compactly() -> None:
    team = by_role(default_team(test_coverage_required=92.5))
    assert team["test_runner"].config == {"coverage_threshold": "92.5"}


def test_list_config_is_comma_joined() -> None:
    questions = [Question(id="q", text="q?", type=QuestionType.MULTI_SELECT, options=OPTIONS)]
    tiny = template([rule(config_mapping={"checks": "q"})], questions)
    assert compose_team(tiny, {"q": ["a", "c"]})[0].config == {"checks": "a,c"}


def test_unanswered_config_is_left_out() -> None:
    tiny = template([rule(config_mapping={"text": "q"})])
    assert compose_team(tiny, {})[0].config == {}


@pytest.mark.parametrize("strategy", list(TierStrategy))
def test_strategy_override_applies_to_every_agent(strategy: TierStrategy) -> None:
    answers: dict[str, Answer] = {
        "package_name": "demo",
        "quality_checks": ["mypy", "ruff", "bandit", "docs_build"],
        "has_tests": True,
        "version_bump": "minor",
        "publish_target": "pypi",
        "update_changelog": True,
    }
    team = compose_team(builtin(), answers, strategy)
    assert len(team) == 9
    assert {agent.strategy for agent in team} == {strategy}
    assert all(agent.tiers == TIER_LADDERS[strategy] for agent in team)


def test_without_override_each_rule_keeps_its_strategy() -> None:
    team = by_role(default_team())
    assert team["test_runner"].strategy is TierStrategy.PROGRESSIVE
    assert team["linter"].strategy is TierStrategy.CHEAP_ONLY
    assert team["publisher"].strategy is TierStrategy.CAPABLE_FIRST


def test_chain_gets_increasing_stages_regardless_of_rule_order() -> None:
    tiny = template(
        [
            rule("c", depends_on=["b"]),
            rule("b", depends_on=["a"]),
            rule("a"),
            rule("solo"),
        ]
    )
    team = compose_team(tiny, {})
    assert [(agent.role, agent.stage) for agent in team] == [
        ("a", 0),
        ("solo", 0),
        ("b", 1),
        ("c", 2),
    ]


def test_stage_is_one_past_the_deepest_dependency() -> None:
    tiny = template(
        [
            rule("a"),
            rule("b", depends_on=["a"]),
            rule("c", depends_on=["b"]),
            rule("d", depends_on=["a", "c"]),
        ]
    )
    assert by_role(compose_team(tiny, {}))["d"].stage == 3


def test_cycle_raises_value_error() -> None:
    tiny = template(
        [
            rule("a", depends_on=["c"]),
            rule("b", depends_on=["a"]),
            rule("c", depends_on=["b"]),
            rule("free"),
        ]
    )
    with pytest.raises(ValueError, match=r"cycle among \['a', 'b', 'c'\]"):
        compose_team(tiny, {})


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(ValueError, match="cycle"):
        compose_team(template([rule("a", depends_on=["a"])]), {})


def test_cycle_through_an_absent_role_is_broken() -> None:
    questions = [Question(id="q", text="q?", type=QuestionType.BOOLEAN)]
    tiny = template(
        [rule("a", depends_on=["b"]), rule("b", depends_on=["a"], when={"q": True})],
        questions,
    )
    team = compose_team(tiny, {"q": False})
    assert [(agent.role, agent.depends_on) for agent in team] == [("a", ())]
    with pytest.raises(ValueError, match="cycle"):
        compose_team(tiny, {"q": True})
