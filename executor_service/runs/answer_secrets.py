"""Secrets in form answers: refused before a run starts, so none is ever written.

The memory service refuses a pattern holding a secret, but by then the run's
files (and the local fallback index) would already hold it. So the answers
are scanned up front, with the memory service's own scanner, each one as it
would reach the pattern: as the form response under its question id, and
inside the summary line `question=answer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from google.rpc import error_details_pb2

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from executor_service.runs.forms import Violation, answer_text, from_form_value
from memory_service.security.secrets import find_secrets


def secret_kinds(question_id: str, value: common_pb2.FormValue) -> list[str]:
    """The kinds of secret an answer holds, once each; never the value."""
    answer = from_form_value(value)
    if answer is None or isinstance(answer, bool | float):
        return []
    probe = memory_pb2.Pattern(
        form_responses={question_id: value},
        content=f"{question_id}={answer_text(answer)}",
    )
    kinds: list[str] = []
    for finding in find_secrets(probe):
        if finding.kind not in kinds:
            kinds.append(finding.kind)
    return kinds


def secret_violations(
    answers: Mapping[str, common_pb2.FormValue], question_ids: Sequence[str]
) -> list[Violation]:
    """(question id, why) for each of these answers that holds a secret."""
    violations: list[Violation] = []
    for question_id in question_ids:
        if question_id in answers and (kinds := secret_kinds(question_id, answers[question_id])):
            violations.append(
                (
                    question_id,
                    f"contains a {', '.join(kinds)}; secrets are never run or stored "
                    "(value not shown)",
                )
            )
    return violations


def secret_error_info() -> error_details_pb2.ErrorInfo:
    """The reason the memory service gives a pattern refused for a secret, from the executor."""
    return error_details_pb2.ErrorInfo(reason="SECRET_DETECTED", domain="executor.attune")
