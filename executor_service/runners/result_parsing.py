"""Reading an agent's structured result out of model text, and judging it.

Models wrap JSON in code fences or add a sentence around it, so the parser
looks for JSON objects anywhere in the text and accepts the output if
exactly one distinct object has the result shape. Parsing never raises:
any text yields a report or a ParseFailure saying why not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, ValidationError, field_validator

# Bounds the work spent on adversarial text full of braces: each candidate
# costs up to one pass over the rest of the text.
_MAX_CANDIDATES = 256


class AgentReport(BaseModel):
    """What the agent says it did: {"status", "criteria", "summary"}."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: Literal["success", "failure"]
    criteria: dict[str, StrictBool]
    summary: StrictStr = ""

    @field_validator("status", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


@dataclass(frozen=True)
class ParseFailure:
    """Why the text holds no usable result."""

    reason: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of judging a report against the agent's criteria."""

    criteria: dict[str, bool]
    error: str

    @property
    def success(self) -> bool:
        return not self.error and all(self.criteria.values())


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every top-level JSON object embedded in the text, left to right."""
    decoder = json.JSONDecoder()
    position = text.find("{")
    tried = 0
    while position != -1 and tried < _MAX_CANDIDATES:
        tried += 1
        try:
            value, end = decoder.raw_decode(text, position)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting.
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict):
            yield value
        position = text.find("{", end)


def _problem(error: ValidationError) -> str:
    issue = error.errors()[0]
    where = ".".join(str(part) for part in issue["loc"]) or "(object)"
    return f"{where}: {issue['msg']}"


def parse_report(text: str) -> AgentReport | ParseFailure:
    """The one result object in the text, or why there is none."""
    reports: list[AgentReport] = []
    first_problem = ""
    found = 0
    for candidate in _json_objects(text):
        found += 1
        try:
            report = AgentReport.model_validate(candidate)
        except ValidationError as error:
            first_problem = first_problem or _problem(error)
            continue
        if report not in reports:
            reports.append(report)
    if len(reports) == 1:
        return reports[0]
    if reports:
        return ParseFailure(f"the output holds {len(reports)} different result objects")
    if found:
        return ParseFailure(f"the output's JSON is not a result object ({first_problem})")
    return ParseFailure("the output holds no JSON object")


def _key(name: str) -> str:
    # Models sometimes change the case or spacing of a criterion's name.
    return " ".join(name.casefold().split())


def judge(report: AgentReport, required: Sequence[str]) -> Verdict:
    """Each required criterion's outcome, and why the attempt failed if it did.

    A criterion the report leaves out counts as unmet; criteria the agent
    was not asked about are ignored.
    """
    reported: dict[str, bool] = {}
    for name, met in report.criteria.items():
        # Conflicting duplicates (after normalising) count as unmet.
        reported[_key(name)] = reported.get(_key(name), True) and met
    criteria = {name: reported.get(_key(name), False) for name in required}
    missing = [name for name in required if _key(name) not in reported]
    unmet = [name for name in required if _key(name) in reported and not criteria[name]]
    problems = []
    if missing:
        problems.append(f"criteria not reported: {', '.join(missing)}")
    if unmet:
        problems.append(f"unmet criteria: {', '.join(unmet)}")
    if report.status == "failure":
        problems.append("the agent reported failure")
    return Verdict(criteria=criteria, error="; ".join(problems))
