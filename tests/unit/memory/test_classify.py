"""Automatic and explicit pattern classification."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.security.classify import (
    INTERNAL,
    PUBLIC,
    SENSITIVE,
    SENSITIVE_TERMS,
    ClassificationValue,
    classify,
)


def pattern(
    content: str = "",
    tags: tuple[str, ...] = (),
    answers: dict[str, common_pb2.FormValue] | None = None,
    classification: ClassificationValue = common_pb2.CLASSIFICATION_UNSPECIFIED,
) -> memory_pb2.Pattern:
    message = memory_pb2.Pattern(
        id="p1", content=content, tags=list(tags), classification=classification
    )
    for key, value in (answers or {}).items():
        message.form_responses[key].CopyFrom(value)
    return message


def level(message: memory_pb2.Pattern) -> str:
    return common_pb2.Classification.Name(classify(message)[0])


# --- sensitive: every rule ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("This report is CONFIDENTIAL.", "confidential"),
        ("Covered by the confidentiality agreement", "confidential"),
        ("Rotated the secret for the deploy bot", "secret"),
        ("Top secrets inside", "secret"),
        ("Reset the password after login", "password"),
        ("passwords policy review", "password"),
        ("Stored credentials in the vault", "credential"),
        ("One credential leaked", "credential"),
        ("Loaded the private key from disk", "private key"),
        ("uses private-keys and private_key files", "private key"),
        ("Handles Personal Data of users", "personal data"),
        ("scrubbed PII before export", "pii"),
        ("exports customer data nightly", "customer data"),
        ("Medical records pipeline", "medical"),
        ("Salary bands for 2025", "salary"),
        ("compares salaries", "salary"),
        ("Validated the SSN format", "ssn"),
        ("GDPR deletion request", "gdpr"),
    ],
)
def test_sensitive_term_in_content(text: str, term: str) -> None:
    value, reason = classify(pattern(content=text))
    assert value == SENSITIVE
    assert f'"{term}" in content' in reason


def test_every_rule_has_a_test_above() -> None:
    # Keeps this file in step with the rule table.
    assert [term for term, _ in SENSITIVE_TERMS] == [
        "confidential",
        "secret",
        "password",
        "credential",
        "private key",
        "personal data",
        "pii",
        "customer data",
        "medical",
        "salary",
        "ssn",
        "gdpr",
    ]


def test_sensitive_term_in_tags() -> None:
    value, reason = classify(pattern(content="nightly export", tags=("etl", "PII")))
    assert value == SENSITIVE
    assert '"pii" in tags' in reason


def test_snake_case_tags_and_answers_match() -> None:
    assert level(pattern(tags=("customer_data",))) == "CLASSIFICATION_SENSITIVE"
    assert level(pattern(tags=("handles-pii",))) == "CLASSIFICATION_SENSITIVE"


def test_sensitive_term_in_string_answer() -> None:
    answers = {"notes": common_pb2.FormValue(string_value="touches medical data")}
    value, reason = classify(pattern(content="a run", answers=answers))
    assert value == SENSITIVE
    assert '"medical" in form_responses.notes' in reason


def test_sensitive_term_in_multi_select_answer() -> None:
    choice = common_pb2.FormValue(
        string_list_value=common_pb2.StringList(values=["metrics", "salary"])
    )
    value, reason = classify(pattern(answers={"data_kinds": choice}))
    assert value == SENSITIVE
    assert "form_responses.data_kinds" in reason


def test_answer_keys_and_non_string_answers_are_not_scanned() -> None:
    answers = {
        "contains_pii": common_pb2.FormValue(bool_value=False),
        "salary_budget": common_pb2.FormValue(number_value=3.0),
    }
    assert level(pattern(content="a run", answers=answers)) == "CLASSIFICATION_INTERNAL"


def test_reason_lists_every_term_found_but_not_the_text() -> None:
    value, reason = classify(
        pattern(content="the password is hunter2", tags=("gdpr",)),
    )
    assert value == SENSITIVE
    assert '"password" in content' in reason
    assert '"gdpr" in tags' in reason
    assert "hunter2" not in reason


# --- word boundaries ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Emailed the secretary about the offsite",
        "The team worked secretly",
        "Moved to passwordless login",
        "Discussed the credentialing process",
        "Prepared the premedical course list",
        "ssnumber field renamed",
        "Checked the piighost build",  # pii inside a word
        "mypii module",
        "private keyboard shortcuts",
        "customer database migration",
    ],
)
def test_words_containing_a_term_do_not_match(text: str) -> None:
    assert level(pattern(content=text)) == "CLASSIFICATION_INTERNAL"


def test_plural_password_policy_is_sensitive() -> None:
    # Decided on purpose: see the module docstring.
    assert level(pattern(content="Updated the passwords policy")) == "CLASSIFICATION_SENSITIVE"


def test_terms_next_to_punctuation_match() -> None:
    for text in ("(secret)", "secret.", "pii,ssn", "'gdpr'", "x/password/y", "-medical-"):
        assert level(pattern(content=text)) == "CLASSIFICATION_SENSITIVE", text


@settings(max_examples=100)
@given(
    prefix=st.sampled_from(["", "a", "x1", "Z"]),
    suffix=st.sampled_from(["", "s", "ary", "9", "ly"]),
    term=st.sampled_from(["secret", "pii", "gdpr", "medical", "ssn"]),
)
def test_glued_letters_or_digits_break_a_match(prefix: str, suffix: str, term: str) -> None:
    # Only the bare term, or a plural the table lists, stays a whole word.
    whole = prefix == "" and (suffix == "" or (suffix == "s" and term in {"secret", "ssn"}))
    expected = "CLASSIFICATION_SENSITIVE" if whole else "CLASSIFICATION_INTERNAL"
    assert level(pattern(content=f"about {prefix}{term}{suffix} here")) == expected


# --- public -----------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["public", "PUBLIC", " Public ", "open-source", "opensource"])
def test_public_tags(tag: str) -> None:
    value, reason = classify(pattern(content="how we cut build times", tags=(tag,)))
    assert value == PUBLIC
    assert "tagged" in reason


@pytest.mark.parametrize(
    "content",
    [
        "[PUBLIC] Release notes for 2.0",
        "[ open source ] packaging guide",
        "Classification: public\nHow to run the linter",
        "visibility=open-source",
    ],
)
def test_public_markers_in_content(content: str) -> None:
    value, reason = classify(pattern(content=content))
    assert value == PUBLIC
    assert "marker" in reason


@pytest.mark.parametrize(
    "content",
    [
        "Documented the public API",
        "We audited our open source dependencies",
        "publicly visible dashboard",
    ],
)
def test_prose_mentioning_public_stays_internal(content: str) -> None:
    assert level(pattern(content=content)) == "CLASSIFICATION_INTERNAL"


def test_public_tag_is_exact() -> None:
    assert level(pattern(tags=("public-api",))) == "CLASSIFICATION_INTERNAL"


def test_sensitive_beats_public() -> None:
    value, reason = classify(pattern(content="[public] how we rotate the secret", tags=("public",)))
    assert value == SENSITIVE
    assert '"secret"' in reason


# --- explicit and default ---------------------------------------------------------


@pytest.mark.parametrize(
    "explicit",
    [
        common_pb2.CLASSIFICATION_PUBLIC,
        common_pb2.CLASSIFICATION_INTERNAL,
        common_pb2.CLASSIFICATION_SENSITIVE,
    ],
)
def test_explicit_classification_wins(explicit: ClassificationValue) -> None:
    # Content that would classify otherwise in both directions.
    for content, tags in (("the password", ()), ("plain", ("public",)), ("plain", ())):
        value, reason = classify(pattern(content=content, tags=tags, classification=explicit))
        assert value == explicit
        assert reason == f"explicit: {common_pb2.Classification.Name(explicit)}"


def test_unknown_explicit_value_is_refused() -> None:
    message = pattern(content="x")
    message.classification = 42  # type: ignore[assignment]
    with pytest.raises(ValueError, match="42"):
        classify(message)


def test_default_is_internal() -> None:
    value, reason = classify(pattern(content="Ran the test suite in 3 minutes", tags=("ci",)))
    assert value == INTERNAL
    assert "default INTERNAL" in reason
    assert level(memory_pb2.Pattern()) == "CLASSIFICATION_INTERNAL"
