"""Classification words and mistyped outcome words are understood as filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memory_service.search.forms import load_forms
from memory_service.search.planning import plan_search

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
FORMS = load_forms(None).catalog


def _filter(query: str) -> str:
    return plan_search(query, "", True, ([], []), NOW, forms=FORMS).applied_filter


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("my sensitive runs", 'classification = "SENSITIVE"'),
        ("confidential patterns", 'classification = "SENSITIVE"'),
        ("non-sensitive runs", 'NOT classification = "SENSITIVE"'),
        ("runs not sensitive", 'NOT classification = "SENSITIVE"'),
        ("patterns classified as public", 'classification = "PUBLIC"'),
        ("classification: internal", 'classification = "INTERNAL"'),
    ],
)
def test_classification_words(query: str, expected: str) -> None:
    assert _filter(query) == expected


def test_public_alone_is_not_a_classification() -> None:
    assert "classification" not in _filter("reviews of the public api")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("succesful runs", "success = true"),
        ("sucessful runs", "success = true"),
        ("successfull runs", "success = true"),
        ("succeded runs", "success = true"),
        ("faild runs", "success = false"),
        ("failled runs", "success = false"),
        ("runs that never faild", "success = true"),
    ],
)
def test_mistyped_outcome_words(query: str, expected: str) -> None:
    assert _filter(query) == expected
