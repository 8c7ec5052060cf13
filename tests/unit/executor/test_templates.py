"""The built-in templates and loading user templates from a directory."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor_service.convert.templates import template_to_proto
from executor_service.runs.composition import PlannedAgent, compose_team, rule_applies
from executor_service.runs.forms import resolve_answers, to_form_value
from executor_service.templates.catalog import (
    Catalog,
    CatalogLoad,
    TemplateProblem,
    load_builtin,
    load_catalog,
)
from executor_service.templates.models import Answer, Question, QuestionType, Template

BUILTIN_IDS = [
    "code_review",
    "documentation",
    "python_package_publish",
    "release_prep",
    "security_audit",
    "test_coverage_boost",
]
BUILTIN_DIR = Path(str(resources.files("executor_service.templates").joinpath("builtin")))


@cache
def builtins() -> Catalog:
    # Loaded once: the property test looks templates up on every example.
    return load_builtin()


def builtin(template_id: str) -> Template:
    found = builtins().get(template_id)
    assert found is not None, template_id
    return found


def example_answer(question: Question) -> Answer:
    """A valid answer to a question that has no default."""
    if question.type is QuestionType.SINGLE_SELECT:
        return question.options[0]
    if question.type is QuestionType.MULTI_SELECT:
        return question.options[:1]
    if question.type is QuestionType.BOOLEAN:
        return True
    if question.type is QuestionType.NUMBER:
        return question.min if question.min is not None else 1.0
    return "example"


def default_answers(template: Template) -> dict[str, Answer]:
    """The defaults, plus an example for each required question without one."""
    answers = {q.id: q.default for q in template.questions if q.default is not None}
    for question in template.questions:
        if question.required and question.id not in answers:
            answers[question.id] = example_answer(question)
    return answers


def assert_dependencies_respected(template: Template, team: list[PlannedAgent]) -> None:
    stage = {agent.role: agent.stage for agent in team}
    position = {agent.role: index for index, agent in enumerate(team)}
    assert len(position) == len(team), "roles are unique"
    assert [agent.stage for agent in team] == sorted(stage.values())
    rules = {rule.role: rule for rule in template.agent_rules}
    for agent in team:
        for dependency in agent.depends_on:
            assert stage[dependency] < agent.stage, f"{agent.role} runs before {dependency}"
            assert position[dependency] < position[agent.role]
        # Every present dependency of the rule is kept: none is silently lost.
        kept = [dep for dep in rules[agent.role].depends_on if dep in stage]
        assert agent.depends_on == tuple(kept)


# --- the built-in templates ---------------------------------------------------------------


def test_every_builtin_loads_without_problems() -> None:
    loaded = load_catalog(None)
    assert loaded.problems == []
    assert [template.id for template in loaded.catalog.all()] == BUILTIN_IDS
    assert [template.id for template in load_builtin().all()] == BUILTIN_IDS


def test_every_builtin_file_is_named_after_its_template() -> None:
    stems = sorted(path.stem for path in BUILTIN_DIR.glob("*.json"))
    assert stems == BUILTIN_IDS
    for stem in stems:
        text = (BUILTIN_DIR / f"{stem}.json").read_text(encoding="utf-8")
        assert Template.model_validate_json(text).id == stem


@pytest.mark.parametrize("template_id", BUILTIN_IDS)
def test_builtin_is_complete_and_realistic(template_id: str) -> None:
    template = builtin(template_id)
    assert template.description
    assert template.version
    assert template.tags
    assert 0 < template.estimated_cost.min_usd < template.estimated_cost.max_usd
    assert template.estimated_duration_seconds > 0
    assert 5 <= len(template.questions) <= 9
    assert 5 <= len(template.agent_rules) <= 9
    assert {question.type for question in template.questions} == set(QuestionType)
    assert any(question.required for question in template.questions)
    for question in template.questions:
        if question.type is QuestionType.NUMBER:
            assert question.min is not None, question.id
            assert question.max is not None, question.id
    assert len({rule.tier_strategy for rule in template.agent_rules}) >= 2
    assert any(rule.depends_on for rule in template.agent_rules)
    assert any(rule.config_mapping for rule in template.agent_rules)
    assert any(not rule.when for rule in template.agent_rules), "some agent always runs"
    # The API form of every built-in converts.
    assert template_to_proto(template).id == template_id


@pytest.mark.parametrize("template_id", BUILTIN_IDS)
def test_builtin_conditions_exercise_every_kind_of_rule(template_id: str) -> None:
    template = builtin(template_id)
    kinds: set[str] = set()
    for rule in template.agent_rules:
        for question_id, required in rule.when.items():
            question = template.question(question_id)
            assert question is not None
            if question.type is QuestionType.MULTI_SELECT and isinstance(required, list):
                kinds.add("multi_select overlap")
            if question.type is QuestionType.SINGLE_SELECT and isinstance(required, list):
                kinds.add("scalar one of")
            if question.type is QuestionType.BOOLEAN:
                kinds.add("boolean")
    assert kinds == {"multi_select overlap", "scalar one of", "boolean"}


@pytest.mark.parametrize("template_id", BUILTIN_IDS)
def test_builtin_defaults_are_valid_answers(template_id: str) -> None:
    template = builtin(template_id)
    answers = default_answers(template)
    resolved, violations = resolve_answers(
        template, {key: to_form_value(value) for key, value in answers.items()}
    )
    assert violations == []
    assert resolved == answers


@pytest.mark.parametrize("template_id", BUILTIN_IDS)
def test_builtin_composes_a_team_for_its_defaults(template_id: str) -> None:
    template = builtin(template_id)
    team = compose_team(template, default_answers(template))
    assert team
    assert_dependencies_respected(template, team)
    assert any(agent.depends_on for agent in team), "the default team has a dependency chain"


def test_coverage_target_is_a_percentage() -> None:
    question = builtin("test_coverage_boost").question("test_coverage_target")
    assert question is not None
    assert question.type is QuestionType.NUMBER
    assert (question.min, question.max) == (0, 100)


def test_security_signoff_is_premium_and_comes_last() -> None:
    template = builtin("security_audit")
    answers = {**default_answers(template), "handles_personal_data": True}
    team = compose_team(template, answers)
    assert team[-1].role == "security_signoff"
    assert team[-1].tiers == ("premium",)
    assert {agent.role for agent in team} >= {"privacy_reviewer", "compliance_mapper"}


def test_code_review_config_copies_answers() -> None:
    template = builtin("code_review")
    answers = {
        **default_answers(template),
        "pull_request_url": "attune/services#42",
        "review_output": "github_review",
    }
    agents = {agent.role: agent for agent in compose_team(template, answers)}
    assert agents["review_poster"].config == {
        "pull_request": "attune/services#42",
        "output": "github_review",
    }
    assert agents["review_synthesizer"].config["max_comments"] == "25"


# --- property: any valid answers compose ---------------------------------------------------


def answer_strategy(question: Question) -> st.SearchStrategy[Answer]:
    """Valid answers to the question, as the form accepts them."""
    if question.type is QuestionType.SINGLE_SELECT:
        return st.sampled_from(question.options)
    if question.type is QuestionType.MULTI_SELECT:
        # A required multi-select needs at least one option chosen.
        return st.lists(
            st.sampled_from(question.options), unique=True, min_size=int(question.required)
        )
    if question.type is QuestionType.BOOLEAN:
        return st.booleans()
    if question.type is QuestionType.NUMBER:
        low = question.min if question.min is not None else -1e6
        high = question.max if question.max is not None else 1e6
        whole = st.integers(int(low), int(high)).map(float)
        return st.one_of(whole, st.floats(low, high, allow_nan=False))
    text = st.text(min_size=1, max_size=20)
    return text.filter(str.strip) if question.required else text


def answers_strategy(template: Template) -> st.SearchStrategy[dict[str, Answer]]:
    """Answers to every required question and to any subset of the others."""
    required = {q.id: answer_strategy(q) for q in template.questions if q.required}
    optional = {q.id: answer_strategy(q) for q in template.questions if not q.required}
    return st.fixed_dictionaries(required, optional=optional)


@pytest.mark.parametrize("template_id", BUILTIN_IDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_valid_answers_compose_a_dependency_respecting_team(
    template_id: str, data: st.DataObject
) -> None:
    template = builtin(template_id)
    given_answers = data.draw(answers_strategy(template))
    resolved, violations = resolve_answers(
        template, {key: to_form_value(value) for key, value in given_answers.items()}
    )
    assert violations == []
    team = compose_team(template, resolved)
    assert_dependencies_respected(template, team)
    chosen = {agent.role for agent in team}
    for rule in template.agent_rules:
        assert (rule.role in chosen) == rule_applies(rule, resolved)


# --- user templates from a directory -------------------------------------------------------


def user_template(template_id: str = "my_workflow", **overrides: Any) -> dict[str, Any]:
    """A small valid template as plain data, ready to dump as YAML or JSON."""
    data: dict[str, Any] = {
        "id": template_id,
        "name": "My workflow",
        "description": "A user template for tests.",
        "version": "0.1.0",
        "estimated_cost": {"min_usd": 0.01, "max_usd": 0.1},
        "estimated_duration_seconds": 60,
        "questions": [
            {"id": "target", "text": "Target?", "type": "text", "required": True},
            {"id": "level", "text": "Level?", "type": "single_select", "options": ["a", "b"]},
            {"id": "score", "text": "Score?", "type": "number", "min": 0, "max": 10},
        ],
        "agent_rules": [
            {"role": "first", "success_criteria": ["done"], "config_mapping": {"t": "target"}},
            {
                "role": "second",
                "success_criteria": ["done"],
                "tier_strategy": "cheap_only",
                "when": {"level": ["a", "b"]},
                "depends_on": ["first"],
            },
        ],
    }
    data.update(overrides)
    return data


def write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def served_ids(loaded: CatalogLoad) -> list[str]:
    return [template.id for template in loaded.catalog.all()]


def user_ids(loaded: CatalogLoad) -> list[str]:
    return [tid for tid in served_ids(loaded) if tid not in BUILTIN_IDS]


def test_valid_yaml_yml_and_json_templates_are_served(tmp_path: Path) -> None:
    write_yaml(tmp_path / "one.yaml", user_template("from_yaml"))
    write_yaml(tmp_path / "two.yml", user_template("from_yml"))
    write_json(tmp_path / "three.json", user_template("from_json"))
    loaded = load_catalog(tmp_path)
    assert loaded.problems == []
    assert user_ids(loaded) == ["from_json", "from_yaml", "from_yml"]
    assert set(BUILTIN_IDS) <= set(served_ids(loaded)), "built-ins are served beside them"
    template = loaded.catalog.get("from_yaml")
    assert template is not None
    team = compose_team(template, {"target": "x", "level": "b"})
    assert [(agent.role, agent.stage) for agent in team] == [("first", 0), ("second", 1)]


def test_other_files_dotfiles_and_subdirectories_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# not a template", encoding="utf-8")
    (tmp_path / ".draft.yaml").write_text("id: [unclosed", encoding="utf-8")
    (tmp_path / "nested.yaml").mkdir()
    write_yaml(tmp_path / "nested.yaml" / "inner.yaml", user_template("inner"))
    loaded = load_catalog(tmp_path)
    assert loaded.problems == []
    assert user_ids(loaded) == []


def test_invalid_templates_are_reported_by_field_and_not_served(tmp_path: Path) -> None:
    good = write_yaml(tmp_path / "good.yaml", user_template("good"))
    questions = user_template()["questions"]
    questions.append({"id": "kind", "text": "Kind?", "type": "numbr"})
    bad_yaml = write_yaml(tmp_path / "bad.yaml", user_template("bad", questions=questions))
    rules = user_template()["agent_rules"]
    rules[1]["tier_strategy"] = "fastest"
    bad_json = write_json(tmp_path / "bad.json", user_template("bad_json", agent_rules=rules))

    loaded = load_catalog(tmp_path)
    assert user_ids(loaded) == ["good"]
    assert {problem.file for problem in loaded.problems} == {bad_yaml, bad_json}
    assert good not in {problem.file for problem in loaded.problems}
    by_file = {problem.file: problem for problem in loaded.problems}
    assert by_file[bad_yaml].field == "questions[3].type"
    assert str(by_file[bad_yaml]).startswith(
        f"{bad_yaml}: questions[3].type: Input should be 'text', 'single_select'"
    )
    assert by_file[bad_json].field == "agent_rules[1].tier_strategy"
    assert "'cheap_only'" in by_file[bad_json].message


def test_every_invalid_field_of_a_file_is_reported(tmp_path: Path) -> None:
    questions = user_template()["questions"]
    questions[1]["default"] = {"not": "an answer"}
    path = write_yaml(
        tmp_path / "bad.yaml", user_template(version=2, questions=questions, extra="field")
    )
    fields = {problem.field: problem.message for problem in load_catalog(tmp_path).problems}
    assert set(fields) == {"version", "questions[1].default", "extra"}
    # An Answer fitting no branch of the union is one problem, not one per branch.
    assert fields["questions[1].default"].startswith("Input should be text, a number")
    assert all(problem.file == path for problem in load_catalog(tmp_path).problems)


def test_model_level_errors_are_reported_on_the_whole_file(tmp_path: Path) -> None:
    rules = user_template()["agent_rules"]
    rules[1]["depends_on"] = ["nobody"]
    path = write_yaml(tmp_path / "bad.yaml", user_template(agent_rules=rules))
    [problem] = load_catalog(tmp_path).problems
    assert (problem.file, problem.field) == (path, "")
    assert "unknown role 'nobody'" in problem.message
    assert str(problem) == f"{path}: {problem.message}"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"when": {"level": "c"}}, "agent_rules[1].when.level", "'c' is not an option"),
        ({"when": {"level": []}}, "agent_rules[1].when.level", "empty list never holds"),
        ({"when": {"score": "high"}}, "agent_rules[1].when.score", "expects a number"),
        ({"depends_on": ["second"]}, "agent_rules[1].depends_on", "cycle"),
    ],
)
def test_rules_that_could_never_work_are_reported(
    tmp_path: Path, change: dict[str, Any], field: str, words: str
) -> None:
    rules = user_template()["agent_rules"]
    rules[1].update(change)
    path = write_yaml(tmp_path / "odd.yaml", user_template(agent_rules=rules))
    loaded = load_catalog(tmp_path)
    assert [(p.file, p.field) for p in loaded.problems] == [(path, field)]
    assert words in loaded.problems[0].message
    assert user_ids(loaded) == []


def test_a_cycle_is_reported_even_if_no_answer_reaches_it(tmp_path: Path) -> None:
    rules = user_template()["agent_rules"]
    rules[0]["depends_on"] = ["second"]
    write_yaml(tmp_path / "cycle.yaml", user_template(agent_rules=rules))
    [problem] = load_catalog(tmp_path).problems
    assert problem.field == "agent_rules[0].depends_on"
    assert "['first', 'second']" in problem.message


def test_defaults_that_are_not_valid_answers_are_reported(tmp_path: Path) -> None:
    questions = user_template()["questions"]
    questions[1]["default"] = "z"
    questions[2]["default"] = 11
    write_yaml(tmp_path / "odd.yaml", user_template(questions=questions))
    fields = {p.field: p.message for p in load_catalog(tmp_path).problems}
    assert set(fields) == {"questions[1].default", "questions[2].default"}
    assert "not an option" in fields["questions[1].default"]
    assert "above the maximum" in fields["questions[2].default"]


def test_collision_with_a_builtin_names_both_files(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "publish.yaml", user_template("python_package_publish"))
    loaded = load_catalog(tmp_path)
    [problem] = loaded.problems
    assert (problem.file, problem.field) == (path, "id")
    assert str(BUILTIN_DIR / "python_package_publish.json") in problem.message
    served = loaded.catalog.get("python_package_publish")
    assert served == builtin("python_package_publish"), "the built-in wins"


def test_collision_between_user_files_serves_neither(tmp_path: Path) -> None:
    first = write_yaml(tmp_path / "a.yaml", user_template("shared"))
    second = write_json(tmp_path / "b.json", user_template("shared", name="Other"))
    write_yaml(tmp_path / "c.yaml", user_template("unrelated"))
    loaded = load_catalog(tmp_path)
    assert user_ids(loaded) == ["unrelated"]
    assert [(p.file, p.field) for p in loaded.problems] == [(first, "id"), (second, "id")]
    for problem in loaded.problems:
        assert str(first) in str(problem)
        assert str(second) in str(problem)


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("broken.yaml", "id: demo\nname: [unclosed\n", "not valid YAML (line 3"),
        ("broken.yml", "id: demo\n  name: x: y\n", "not valid YAML (line 2"),
        ("two.yaml", "id: a\n---\nid: b\n", "not valid YAML"),
        ("broken.json", '{\n  "id": "demo",\n  "name": \n}\n', "not valid JSON (line 4"),
        ("empty.yaml", "", "the file is empty"),
        ("list.json", "[1, 2]", "valid dictionary"),
    ],
)
def test_unparseable_files_are_reported(tmp_path: Path, name: str, text: str, words: str) -> None:
    write_yaml(tmp_path / "good.yaml", user_template("good"))
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    loaded = load_catalog(tmp_path)
    [problem] = loaded.problems
    assert (problem.file, problem.field) == (path, "")
    assert words in problem.message
    assert user_ids(loaded) == ["good"]


def test_undecodable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    [problem] = load_catalog(tmp_path).problems
    assert problem.file == path
    assert "cannot read the file" in problem.message


def test_missing_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    loaded = load_catalog(missing)
    assert loaded.problems == [TemplateProblem(missing, "", "templates directory does not exist")]
    assert served_ids(loaded) == BUILTIN_IDS


def test_a_file_instead_of_a_directory_is_a_problem(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "template.yaml", user_template())
    loaded = load_catalog(path)
    [problem] = loaded.problems
    assert problem.file == path
    assert "not a directory" in problem.message
    assert served_ids(loaded) == BUILTIN_IDS


def test_problem_text_names_file_field_and_message() -> None:
    problem = TemplateProblem(Path("templates/bad.yaml"), "questions[2].type", "wrong type")
    assert str(problem) == "templates/bad.yaml: questions[2].type: wrong type"
    whole = TemplateProblem(Path("templates/bad.yaml"), "", "not valid YAML")
    assert str(whole) == "templates/bad.yaml: not valid YAML"
