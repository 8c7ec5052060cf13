"""The form catalog the memory service reads from template files: the built-in
templates the executor ships, plus MEMORY_TEMPLATES_DIR; bad files are
reported, never raised, and the others are read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memory_service.search.forms import (
    FormCatalog,
    FormQuestion,
    QuestionKind,
    builtin_templates_dir,
    load_forms,
    template_from,
)

BUILTIN = Path(__file__).parents[3] / "executor_service" / "templates" / "builtin"


def template(template_id: str = "team_retro", **changes: Any) -> dict[str, Any]:
    """A template file's content, valid unless changed."""
    document: dict[str, Any] = {
        "id": template_id,
        "name": "Team retrospective",
        "description": "Summarise a sprint.",
        "version": "1.0.0",
        "tags": ["process"],
        "estimated_cost": {"min_usd": 0.01, "max_usd": 0.2},
        "estimated_duration_seconds": 120,
        "questions": [
            {"id": "sprint_name", "text": "Which sprint?", "type": "text", "required": True},
            {
                "id": "mood",
                "text": "How did the sprint feel?",
                "type": "single_select",
                "options": ["calm", "hectic"],
            },
            {
                "id": "goals_met",
                "text": "What share of the goals was met, in percent?",
                "type": "number",
                "min": 0,
                "max": 100,
            },
        ],
        "agent_rules": [{"role": "summariser", "success_criteria": ["every ticket"]}],
    }
    document.update(changes)
    return document


def write(folder: Path, name: str, content: object) -> Path:
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_the_builtin_templates_are_found_and_read() -> None:
    loaded = load_forms(None)
    assert loaded.problems == ()
    assert [t.id for t in loaded.catalog.templates] == sorted(
        p.stem for p in BUILTIN.glob("*.json")
    )
    publish = loaded.catalog.get("python_package_publish")
    assert publish is not None
    assert publish.name == "Publish a Python package"
    coverage = next(q for q in publish.questions if q.id == "test_coverage_required")
    assert coverage == FormQuestion(
        "test_coverage_required",
        "What line coverage must the tests reach, in percent?",
        QuestionKind.NUMBER,
        (),
        0.0,
        100.0,
        "percent",
    )
    target = next(q for q in publish.questions if q.id == "publish_target")
    assert target.options == ("pypi", "testpypi", "none")


def test_the_builtin_folder_is_located_without_importing_the_executor() -> None:
    script = (
        "import sys\n"
        "from memory_service.search.forms import builtin_templates_dir, load_forms\n"
        "assert builtin_templates_dir() is not None\n"
        "assert len(load_forms(None).catalog.templates) == 6\n"
        "print(sorted(m for m in sys.modules if m.startswith('executor_service')))\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert shown.stdout.strip() == "[]"
    assert builtin_templates_dir() == BUILTIN


def test_user_templates_in_json_and_yaml_are_read_beside_the_builtins(tmp_path: Path) -> None:
    write(tmp_path, "retro.json", template())
    write(tmp_path, "incident.yaml", "id: incident\nname: Incident review\n" + _yaml_rest())
    write(tmp_path, "other.yml", "id: other_one\nname: Other\n" + _yaml_rest())
    write(tmp_path, ".hidden.json", template("hidden"))  # Editor files are skipped.
    write(tmp_path, "notes.txt", "not a template")
    (tmp_path / "nested.json").mkdir()
    loaded = load_forms(tmp_path)
    assert loaded.problems == ()
    ids = [t.id for t in loaded.catalog.templates]
    assert {"team_retro", "incident", "other_one", "code_review"} <= set(ids)
    assert "hidden" not in ids
    assert ids == sorted(ids)
    retro = loaded.catalog.get("team_retro")
    assert retro is not None
    assert retro.tags == ("process",)
    assert [q.kind for q in retro.questions] == [
        QuestionKind.TEXT,
        QuestionKind.SINGLE_SELECT,
        QuestionKind.NUMBER,
    ]


def _yaml_rest() -> str:
    return (
        "description: d\nversion: '1'\nestimated_cost: {min_usd: 0, max_usd: 1}\n"
        "estimated_duration_seconds: 1\n"
        "questions:\n"
        "  - {id: severity, text: 'How bad?', type: single_select, options: [sev1, sev2]}\n"
        "agent_rules: [{role: writer, success_criteria: [done]}]\n"
    )


BAD_FILES: list[tuple[str, object, str]] = [
    ("broken.json", '{"id": "x",', "not valid JSON (line 1, column 12)"),
    ("broken.yaml", "id: [unclosed", "not valid YAML (line 1"),
    ("empty.yaml", "", "expected a mapping"),
    ("list.json", [1, 2], "expected a mapping"),
    ("unknown_key.json", template("u1", colour="red"), "unknown keys ['colour']"),
    ("missing_key.json", {k: v for k, v in template("m1").items() if k != "name"}, "'name'"),
    ("bad_id.json", template("Bad-Id"), "id: expected an id"),
    (
        "bad_type.json",
        template("t1", questions=[{"id": "q", "text": "?", "type": "date"}]),
        "questions[0].type",
    ),
    (
        "options_on_number.json",
        template("t2", questions=[{"id": "q", "text": "?", "type": "number", "options": ["a"]}]),
        "questions[0].options",
    ),
    (
        "select_without_options.json",
        template("t3", questions=[{"id": "q", "text": "?", "type": "multi_select"}]),
        "questions[0].options",
    ),
    (
        "min_over_max.json",
        template("t4", questions=[{"id": "q", "text": "?", "type": "number", "min": 5, "max": 1}]),
        "questions[0].max",
    ),
    (
        "nan_bound.json",
        '{"id": "t5", "questions": [{"id": "q", "text": "?", "type": "number", "min": NaN}]}',
        "",
    ),
    (
        "repeated_question.json",
        template("t6", questions=[{"id": "q", "text": "?", "type": "text"}] * 2),
        "question ids must be unique",
    ),
    ("bad_tags.json", template("t7", tags="process"), "tags"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
]


@pytest.mark.parametrize(("name", "content", "says"), BAD_FILES)
def test_a_bad_file_is_reported_and_the_others_are_read(
    tmp_path: Path, name: str, content: object, says: str
) -> None:
    bad = write(tmp_path, name, content)
    write(tmp_path, "zz_good.json", template())
    loaded = load_forms(tmp_path)
    assert [problem.file for problem in loaded.problems] == [str(bad)]
    assert says in loaded.problems[0].message
    assert loaded.catalog.get("team_retro") is not None
    assert len(loaded.catalog.templates) == 7


def test_an_unreadable_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"id: caf\xe9\n")
    loaded = load_forms(tmp_path)
    assert [p.file for p in loaded.problems] == [str(tmp_path / "latin1.yaml")]


def test_a_user_file_cannot_shadow_a_builtin_and_repeated_ids_are_none_read(
    tmp_path: Path,
) -> None:
    shadow = write(tmp_path, "shadow.json", template("code_review", name="Mine"))
    first = write(tmp_path, "a.json", template("twin"))
    second = write(tmp_path, "b.json", template("twin"))
    loaded = load_forms(tmp_path)
    assert sorted(p.file for p in loaded.problems) == sorted(map(str, (shadow, first, second)))
    review = loaded.catalog.get("code_review")
    assert review is not None
    assert review.name == "Review a pull request"
    assert loaded.catalog.get("twin") is None


def test_a_missing_folder_is_reported_with_the_builtins_still_read(tmp_path: Path) -> None:
    missing = load_forms(tmp_path / "nowhere")
    assert [p.message for p in missing.problems] == ["templates directory does not exist"]
    assert len(missing.catalog.templates) == 6
    a_file = write(tmp_path, "file.json", template())
    assert load_forms(a_file).problems[0].file == str(a_file)
    no_builtins = load_forms(None, tmp_path / "no-builtins")
    assert [p.message for p in no_builtins.problems] == ["built-in templates not found"]
    assert no_builtins.catalog.templates == ()


def test_template_from_keeps_what_understanding_reads() -> None:
    read = template_from(template())
    assert (read.id, read.name, read.description) == (
        "team_retro",
        "Team retrospective",
        "Summarise a sprint.",
    )
    assert read.questions[2].unit == "percent"
    assert read.questions[2].maximum == 100.0
    assert read.questions[1].unit == ""  # Units only for number questions.


def test_catalogs_compare_by_identity_and_list_templates_by_id() -> None:
    one = FormCatalog.of([template_from(template("b")), template_from(template("a"))])
    other = FormCatalog.of(one.templates)
    assert [t.id for t in one.templates] == ["a", "b"]
    assert one != other
    assert one.templates == other.templates
    assert one.get("b") is one.templates[1]
    assert one.get("c") is None


def test_a_template_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    from memory_service.search.forms import MAX_TEMPLATE_FILE_BYTES, load_forms

    big = tmp_path / "big.yaml"
    big.write_text("id: big\n" + "#" * (MAX_TEMPLATE_FILE_BYTES + 1) + "\n")
    loaded = load_forms(tmp_path)
    assert any("larger than" in problem.message for problem in loaded.problems)
    assert all(template.id != "big" for template in loaded.catalog.templates)
