"""The template catalog: built-in templates shipped with the package, plus user templates."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml
from pydantic import ValidationError

from executor_service.runs.forms import resolve_answers, to_form_value
from executor_service.templates.models import Answer, QuestionType, Template

TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json")

# The branches of the `Answer` union as pydantic names them in an error's loc.
_ANSWER_BRANCHES = frozenset({"str", "float", "bool", "list[str]"})
_ANSWER_MESSAGE = "Input should be text, a number, a boolean or a list of texts"


class Catalog:
    """Templates by id, ordered by id."""

    def __init__(self, templates: list[Template]) -> None:
        self._by_id = {template.id: template for template in sorted(templates, key=lambda t: t.id)}

    def get(self, template_id: str) -> Template | None:
        """The template, or None."""
        return self._by_id.get(template_id)

    def all(self) -> list[Template]:
        """Every template, ordered by id."""
        return list(self._by_id.values())


@dataclass(frozen=True)
class TemplateProblem:
    """Why a template file (or the templates directory) is not served.

    `field` is a path into the template such as `agent_rules[1].tier_strategy`,
    or "" when the problem concerns the whole file.
    """

    file: Path
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else str(self.file)
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class CatalogLoad:
    """The templates that are served, and the problems found while loading."""

    catalog: Catalog
    problems: list[TemplateProblem] = field(default_factory=list)


def load_catalog(templates_dir: Path | None) -> CatalogLoad:
    """The built-in templates plus the user templates in templates_dir.

    User templates are the *.yaml, *.yml and *.json files directly in the
    directory (one template each; dotfiles and subdirectories are skipped),
    read in name order. Nothing here raises on bad data: every problem is
    reported and the template concerned is not served, while the others are.

    - A file that cannot be read or parsed, or whose template fails the
      model's validation or the consistency checks below: not served.
    - A user template reusing a built-in id: the built-in is served, the
      user file is not (a built-in cannot be shadowed by accident).
    - Two or more user files sharing an id: none of them is served, since
      picking one would depend on file names; each file gets a problem
      naming the others.
    - A missing or non-directory templates_dir: one problem, built-ins only.

    Consistency checks beyond the model: defaults and `when` values must be
    valid answers to their question (a `when` value that is not an option
    would silently never hold), and depends_on must not form a cycle
    (composition would fail at run time for some answers).
    """
    problems: list[TemplateProblem] = []
    builtins: dict[str, Path] = {}
    served: list[Template] = []
    folder = resources.files("executor_service.templates").joinpath("builtin")
    for source in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if not source.name.endswith(".json"):
            continue
        shown = Path(str(source))
        template = _load_file(source, shown, problems)
        if template is None:
            continue
        if template.id in builtins:
            problems.append(_duplicate(shown, template.id, [builtins[template.id]]))
            continue
        builtins[template.id] = shown
        served.append(template)

    by_id: dict[str, list[tuple[Path, Template]]] = {}
    for path in _user_files(templates_dir, problems) if templates_dir is not None else []:
        template = _load_file(path, path, problems)
        if template is None:
            continue
        if template.id in builtins:
            problems.append(
                TemplateProblem(
                    path,
                    "id",
                    f"template id {template.id!r} is taken by the built-in template "
                    f"{builtins[template.id]}; the built-in is served, this file is not",
                )
            )
            continue
        by_id.setdefault(template.id, []).append((path, template))
    for template_id, defined in by_id.items():
        if len(defined) == 1:
            served.append(defined[0][1])
            continue
        for path, _ in defined:
            others = [other for other, _ in defined if other != path]
            problems.append(_duplicate(path, template_id, others))
    return CatalogLoad(Catalog(served), problems)


def load_builtin() -> Catalog:
    """The catalog of templates shipped as data files in this package.

    Raises ValueError if any built-in is invalid: that is a packaging bug,
    not user input, so it must not go unnoticed.
    """
    loaded = load_catalog(None)
    if loaded.problems:
        raise ValueError("invalid built-in templates: " + "; ".join(map(str, loaded.problems)))
    return loaded.catalog


def _duplicate(path: Path, template_id: str, others: list[Path]) -> TemplateProblem:
    named = ", ".join(str(other) for other in others)
    return TemplateProblem(
        path,
        "id",
        f"template id {template_id!r} is also defined in {named}; none of these files is served",
    )


def _user_files(folder: Path, problems: list[TemplateProblem]) -> list[Path]:
    """The template files in folder, by name; a problem if there is no such folder."""
    if not folder.exists():
        problems.append(TemplateProblem(folder, "", "templates directory does not exist"))
        return []
    if not folder.is_dir():
        problems.append(TemplateProblem(folder, "", "templates directory is not a directory"))
        return []
    try:
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    except OSError as error:
        problems.append(TemplateProblem(folder, "", f"cannot list the directory: {error}"))
        return []
    return [
        entry
        for entry in entries
        if entry.suffix.lower() in TEMPLATE_SUFFIXES
        and not entry.name.startswith(".")  # editor backups and lock files
        and entry.is_file()
    ]


def _load_file(
    source: Traversable, shown: Path, problems: list[TemplateProblem]
) -> Template | None:
    """The file's template if it is valid; else None, with its problems appended."""
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problems.append(TemplateProblem(shown, "", f"cannot read the file: {error}"))
        return None
    try:
        data = _parse(text, as_json=shown.suffix.lower() == ".json")
    except ValueError as error:
        problems.append(TemplateProblem(shown, "", str(error)))
        return None
    if data is None:
        problems.append(TemplateProblem(shown, "", "the file is empty; expected one template"))
        return None
    try:
        template = Template.model_validate(data)
    except ValidationError as error:
        problems.extend(_validation_problems(shown, error))
        return None
    found = [TemplateProblem(shown, path, message) for path, message in _inconsistencies(template)]
    problems.extend(found)
    return None if found else template


def _parse(text: str, *, as_json: bool) -> object:
    """The data in the text; ValueError naming the line if it does not parse."""
    if as_json:
        try:
            parsed: object = json.loads(text)
        except json.JSONDecodeError as error:
            where = f"line {error.lineno}, column {error.colno}"
            raise ValueError(f"not valid JSON ({where}): {error.msg}") from error
        return parsed
    try:
        loaded: object = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        reason = error.problem or error.context or "syntax error"
        raise ValueError(f"not valid YAML{where}: {reason}") from error
    except yaml.YAMLError as error:
        raise ValueError(f"not valid YAML: {error}") from error
    return loaded


def _validation_problems(shown: Path, error: ValidationError) -> list[TemplateProblem]:
    """One problem per offending field, in pydantic's order."""
    problems: list[TemplateProblem] = []
    for detail in error.errors():
        loc = detail["loc"]
        message = detail["msg"]
        # An Answer that fits no branch of the union fails once per branch:
        # report it once, at the field itself.
        for index in range(1, len(loc)):
            after_default = loc[index - 1] == "default"
            after_when = index >= 2 and loc[index - 2] == "when"
            if loc[index] in _ANSWER_BRANCHES and (after_default or after_when):
                loc, message = loc[:index], _ANSWER_MESSAGE
                break
        problem = TemplateProblem(shown, _field_path(loc), message)
        if problem not in problems:
            problems.append(problem)
    return problems


def _field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as `agent_rules[1].tier_strategy`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    return path


def _inconsistencies(template: Template) -> list[tuple[str, str]]:
    """(field, message) for what the model accepts but would misbehave at run time."""
    found: list[tuple[str, str]] = []
    for index, question in enumerate(template.questions):
        if question.default is not None:
            problem = _misfit(template, question.id, question.default)
            if problem:
                found.append((f"questions[{index}].default", problem))
        if question.min is not None and question.max is not None and question.min > question.max:
            found.append((f"questions[{index}].max", "is below min"))
    for index, rule in enumerate(template.agent_rules):
        for question_id, required in rule.when.items():
            place = f"agent_rules[{index}].when.{question_id}"
            for problem in _when_misfits(template, question_id, required):
                found.append((place, problem))
    stuck = _stuck(template)
    if stuck:
        roles = [role for _, role in stuck]
        message = f"depends_on never resolves: a cycle among or behind the roles {roles}"
        found.append((f"agent_rules[{stuck[0][0]}].depends_on", message))
    return found


def _when_misfits(template: Template, question_id: str, required: Answer) -> list[str]:
    """Why values of a `when` condition can never be answers to the question."""
    question = template.question(question_id)
    if question is None:  # The model's own validator reports unknown questions.
        return []
    if isinstance(required, list) and not required:
        return ["an empty list never holds"]
    problems: list[str] = []
    for value in required if isinstance(required, list) else [required]:
        answer: Answer = value
        if question.type is QuestionType.MULTI_SELECT:
            if not isinstance(value, str):
                problems.append(f"{value!r} is not an option; choose from {question.options}")
                continue
            answer = [value]  # One required option holds when it is among those chosen.
        problem = _misfit(template, question_id, answer)
        if problem:
            problems.append(problem)
    return problems


def _misfit(template: Template, question_id: str, answer: Answer) -> str | None:
    """Why the answer is not a valid answer to the question; None if it is."""
    _, violations = resolve_answers(template, {question_id: to_form_value(answer)})
    return next((message for where, message in violations if where == question_id), None)


def _stuck(template: Template) -> list[tuple[int, str]]:
    """(index, role) of the rules on or behind a depends_on cycle; [] if there is none."""
    placed: set[str] = set()
    pending = list(enumerate(template.agent_rules))
    while pending:
        ready = {rule.role for _, rule in pending if all(dep in placed for dep in rule.depends_on)}
        if not ready:
            return [(index, rule.role) for index, rule in pending]
        placed |= ready
        pending = [(index, rule) for index, rule in pending if rule.role not in placed]
    return []
