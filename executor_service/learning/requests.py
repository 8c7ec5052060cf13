"""Checking the learning RPCs' requests: every problem reported at once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.learning.analytics import Window
from executor_service.runs.forms import Violation, resolve_answers
from executor_service.templates.models import Answer, Template
from memory_service.servicekit.errors import invalid_argument

# The template model's own rule for an id.
TEMPLATE_ID = re.compile(r"[a-z][a-z0-9_]{0,127}")
# What google.protobuf.Timestamp allows: 0001-01-01 to 9999-12-31, UTC.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def analytics_window(request: executor_pb2.GetAnalyticsRequest) -> Window:
    """The runs the request asks about; INVALID_ARGUMENT listing every problem."""
    violations: list[Violation] = []
    if request.template_id and not TEMPLATE_ID.fullmatch(request.template_id):
        violations.append(
            ("template_id", "not a template id: 1 to 128 of a-z, 0-9 and _, from a letter")
        )
    start = end = None
    if request.HasField("start_time"):
        start = _moment(request.start_time, "start_time", violations)
    if request.HasField("end_time"):
        end = _moment(request.end_time, "end_time", violations)
    if start is not None and end is not None and start >= end:
        violations.append(("end_time", "must be after start_time (the window is [start, end))"))
    if violations:
        raise invalid_argument(violations)
    return Window(template_id=request.template_id, start=start, end=end)


def _moment(
    stamp: timestamp_pb2.Timestamp, name: str, violations: list[Violation]
) -> datetime | None:
    if not _MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS or not 0 <= stamp.nanos < 10**9:
        violations.append((name, "not a valid timestamp (0001-01-01 to 9999-12-31 UTC)"))
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def partial_answers(
    template: Template, answers: Mapping[str, common_pb2.FormValue]
) -> dict[str, Answer]:
    """The answers with defaults applied, for a form still being filled in.

    A recommendation is asked for before the form is complete, so a required
    question not answered yet is no error here; a wrong answer, or an answer
    to a question the form does not ask, still is (INVALID_ARGUMENT).
    """
    resolved, violations = resolve_answers(template, answers)
    asked = {question.id for question in template.questions}
    # The only violations of a question left unanswered are "required" ones.
    wrong = [(field, text) for field, text in violations if field not in asked or field in answers]
    if wrong:
        raise invalid_argument(wrong)
    return resolved
