"""The form catalog query understanding learns its words from: each template's
id, name and tags, and its questions (id, label, type, options, range, unit).

Both services build the same catalog: the memory service reads the template
files (the built-ins the executor ships, plus MEMORY_TEMPLATES_DIR), and the
executor converts its own loaded catalog (executor_service/templates/forms.py).
The memory service never imports the executor: the built-in files are found
as data of the installed `executor_service` package (one distribution ships
both services), without importing it.

Reading is lenient where understanding does not care and strict where it
does: a file is refused (reported, never raised) when it does not parse,
when a top-level key or a question key is unknown or a required one missing,
when an id is not a valid id, or when a question's type, options or range
are inconsistent. The executor also refuses templates whose agent rules or
defaults are invalid; such a template's words are still understood here, and
both services report the problem in their logs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json")
_ID = re.compile(r"[a-z][a-z0-9_]*")
_TEMPLATE_KEYS = {"id", "name", "description", "version", "tags", "estimated_cost"}
_TEMPLATE_KEYS |= {"estimated_duration_seconds", "questions", "agent_rules"}
_REQUIRED_TEMPLATE_KEYS = _TEMPLATE_KEYS - {"tags"}
_QUESTION_KEYS = {"id", "text", "help", "type", "options", "default", "required", "min", "max"}
_UNITS = {"percent": "percent", "percentage": "percent", "%": "percent"}


class QuestionKind(StrEnum):
    """A question's type, and so its answer's."""

    TEXT = "text"
    SINGLE_SELECT = "single_select"
    MULTI_SELECT = "multi_select"
    BOOLEAN = "boolean"
    NUMBER = "number"


@dataclass(frozen=True)
class FormQuestion:
    """One question of a template's form, as understanding sees it."""

    id: str
    label: str  # The question's text, as the form asks it.
    kind: QuestionKind
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""  # "percent" when the label asks for one; else "".


@dataclass(frozen=True)
class FormTemplate:
    """A template's names and form."""

    id: str
    name: str
    description: str = ""
    tags: tuple[str, ...] = ()
    questions: tuple[FormQuestion, ...] = ()


@dataclass(frozen=True, eq=False)
class FormCatalog:
    """Templates by id, in id order. Compared and hashed by identity, so that
    what is compiled from a catalog can be cached cheaply per catalog."""

    templates: tuple[FormTemplate, ...] = ()

    @classmethod
    def of(cls, templates: Iterable[FormTemplate]) -> FormCatalog:
        """The catalog of the templates, ordered by id."""
        return cls(tuple(sorted(templates, key=lambda template: template.id)))

    def get(self, template_id: str) -> FormTemplate | None:
        """The template with that id, if any."""
        return next((t for t in self.templates if t.id == template_id), None)


EMPTY_FORMS = FormCatalog()


def unit_of(label: str) -> str:
    """The unit a number question's label asks for ("in percent"), or ""."""
    found = re.search(r"%|\bpercent(?:age)?\b", label, re.IGNORECASE)
    return _UNITS[found.group().lower()] if found else ""


@dataclass(frozen=True)
class FormsProblem:
    """Why a template file (or the templates directory) is not understood."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass(frozen=True)
class FormsLoad:
    """The catalog read, and the problems met while reading it."""

    catalog: FormCatalog
    problems: tuple[FormsProblem, ...] = ()


def builtin_templates_dir() -> Path | None:
    """Where the executor's built-in template files are installed, if they are.

    find_spec of a top-level package locates it without importing it.
    """
    spec = importlib.util.find_spec("executor_service")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "templates" / "builtin"
    return folder if folder.is_dir() else None


def load_forms(templates_dir: Path | None, builtin_dir: Path | None = None) -> FormsLoad:
    """The built-in templates (builtin_dir, default: the installed ones) plus
    the template files directly in templates_dir (*.yaml, *.yml, *.json, in
    name order; dotfiles and subdirectories skipped), as the executor serves
    them: a file reusing a built-in id is not read, and user files sharing an
    id are none of them read. Never raises on bad data: problems are returned."""
    problems: list[FormsProblem] = []
    builtin_dir = builtin_dir or builtin_templates_dir()
    builtins: dict[str, FormTemplate] = {}
    if builtin_dir is None or not builtin_dir.is_dir():
        where = str(builtin_dir or "executor_service/templates/builtin")
        problems.append(FormsProblem(where, "built-in templates not found"))
    else:
        for path in sorted(builtin_dir.glob("*.json")):
            template = _read(path, problems)
            if template is not None and template.id not in builtins:
                builtins[template.id] = template
    users: dict[str, list[tuple[Path, FormTemplate]]] = {}
    for path in _user_files(templates_dir, problems) if templates_dir is not None else []:
        template = _read(path, problems)
        if template is None:
            continue
        if template.id in builtins:
            problems.append(FormsProblem(str(path), f"template id {template.id!r} is built in"))
            continue
        users.setdefault(template.id, []).append((path, template))
    served = list(builtins.values())
    for template_id, defined in users.items():
        if len(defined) == 1:
            served.append(defined[0][1])
            continue
        for path, _ in defined:
            problems.append(FormsProblem(str(path), f"template id {template_id!r} is repeated"))
    return FormsLoad(FormCatalog.of(served), tuple(problems))


def _user_files(folder: Path, problems: list[FormsProblem]) -> list[Path]:
    if not folder.is_dir():
        problems.append(FormsProblem(str(folder), "templates directory does not exist"))
        return []
    try:
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    except OSError as error:
        problems.append(FormsProblem(str(folder), f"cannot list the directory: {error}"))
        return []
    return [
        entry
        for entry in entries
        if entry.suffix.lower() in TEMPLATE_SUFFIXES
        and not entry.name.startswith(".")
        and entry.is_file()
    ]


# A template file larger than this is refused before it is parsed: real
# templates are a few kilobytes, and YAML parsing is costly on big inputs.
MAX_TEMPLATE_FILE_BYTES = 1024 * 1024


def _read(path: Path, problems: list[FormsProblem]) -> FormTemplate | None:
    """The file's template, or None with a problem appended."""
    try:
        if path.stat().st_size > MAX_TEMPLATE_FILE_BYTES:
            problems.append(
                FormsProblem(str(path), f"larger than {MAX_TEMPLATE_FILE_BYTES} bytes; not read")
            )
            return None
        text = path.read_text(encoding="utf-8")
        data: object = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        return template_from(data)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, yaml.YAMLError) as error:
        problems.append(FormsProblem(str(path), _message(error)))
        return None


def _message(error: Exception) -> str:
    """What is wrong with a file, in one line, with the place when known."""
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}"
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"not valid YAML{where}: {error.problem or error.context or 'syntax error'}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return next(iter(str(error).splitlines()), "") or type(error).__name__


def template_from(data: object) -> FormTemplate:
    """A template's form from a parsed file; ValueError saying what is wrong."""
    document = _mapping(data, "the file", _TEMPLATE_KEYS, _REQUIRED_TEMPLATE_KEYS)
    template_id = _identifier(document["id"], "id")
    questions = document["questions"]
    if not isinstance(questions, list):
        raise ValueError("questions: expected a list")
    parsed = tuple(_question(item, index) for index, item in enumerate(questions))
    ids = [question.id for question in parsed]
    if len(set(ids)) != len(ids):
        raise ValueError("questions: question ids must be unique")
    tags = document.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ValueError("tags: expected a list of texts")
    return FormTemplate(
        template_id,
        _text(document["name"], "name"),
        _text(document["description"], "description"),
        tuple(tags),
        parsed,
    )


def _mapping(data: object, where: str, known: set[str], required: set[str]) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping")
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}")
    missing = sorted(required - set(data))
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")
    return data


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected text")
    return value


def _identifier(value: object, where: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError(f"{where}: expected an id of lower-case letters, digits and _")
    return value


def _bound(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number")
    return float(value)


def _question(data: object, index: int) -> FormQuestion:
    where = f"questions[{index}]"
    question = _mapping(data, where, _QUESTION_KEYS, {"id", "text", "type"})
    try:
        kind = QuestionKind(question["type"])
    except ValueError:
        raise ValueError(f"{where}.type: one of {[k.value for k in QuestionKind]}") from None
    options = question.get("options", [])
    if not isinstance(options, list) or not all(isinstance(option, str) for option in options):
        raise ValueError(f"{where}.options: expected a list of texts")
    if (kind in (QuestionKind.SINGLE_SELECT, QuestionKind.MULTI_SELECT)) != bool(options):
        raise ValueError(f"{where}.options: required for select questions and only for them")
    low = _bound(question.get("min"), f"{where}.min")
    high = _bound(question.get("max"), f"{where}.max")
    if low is not None and high is not None and low > high:
        raise ValueError(f"{where}.max: is below min")
    label = _text(question["text"], f"{where}.text")
    return FormQuestion(
        _identifier(question["id"], f"{where}.id"),
        label,
        kind,
        tuple(options),
        low,
        high,
        unit_of(label) if kind is QuestionKind.NUMBER else "",
    )
