"""The JSON form of remembered form choices, and the limits it shares with memory."""

from __future__ import annotations

import json

import pytest

from executor_service.memory.client import (
    MAX_SESSION_ID,
    choices_key,
    decode_choices,
    encode_choices,
)
from executor_service.templates.models import Answer
from memory_service.patterns import MAX_CONTEXT_ID

CHOICES: dict[str, Answer] = {
    "package_name": "café-tools",
    "has_tests": False,
    "test_coverage_required": 85.0,
    "quality_checks": ["mypy", "ruff"],
}


def test_the_key_names_the_template() -> None:
    assert choices_key("python_package_publish") == "form:python_package_publish"


def test_the_executor_checks_the_memory_services_session_limit() -> None:
    assert MAX_SESSION_ID == MAX_CONTEXT_ID


def test_choices_round_trip_as_a_plain_json_object() -> None:
    text = encode_choices(CHOICES)
    assert text is not None
    assert json.loads(text) == CHOICES
    assert "café" in text  # Readable as written, not \u-escaped.
    assert decode_choices(text) == CHOICES


def test_the_encoding_does_not_depend_on_answer_order() -> None:
    assert encode_choices(dict(reversed(CHOICES.items()))) == encode_choices(CHOICES)


@pytest.mark.parametrize("number", [float("inf"), float("-inf"), float("nan")])
def test_a_number_json_cannot_carry_is_not_encoded(number: float) -> None:
    assert encode_choices({**CHOICES, "test_coverage_required": number}) is None


def test_json_integers_read_back_as_form_numbers() -> None:
    decoded = decode_choices('{"test_coverage_required": 80}')
    assert decoded == {"test_coverage_required": 80.0}
    assert decoded is not None
    assert isinstance(decoded["test_coverage_required"], float)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '"a string"',
        '{"q": null}',
        '{"q": {"nested": 1}}',
        '{"q": ["a", 1]}',
        '{"q": NaN}',
    ],
)
def test_values_of_another_shape_are_not_choices(text: str) -> None:
    assert decode_choices(text) is None
