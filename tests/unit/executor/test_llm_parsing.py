"""Reading an agent's JSON result out of model text; Retry-After; scrubbing; the prompt."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor_service.runners.prompt import build_prompt
from executor_service.runners.result_parsing import AgentReport, ParseFailure, judge, parse_report
from executor_service.runs.composition import PlannedAgent
from executor_service.templates.models import Tier, TierStrategy
from memory_service.servicekit.http_retry import parse_retry_after, scrub

RESULT = {"status": "success", "criteria": {"tests pass": True}, "summary": "all green"}
EXPECTED = AgentReport(status="success", criteria={"tests pass": True}, summary="all green")


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(RESULT),
        f"```json\n{json.dumps(RESULT, indent=2)}\n```",
        f"```\n{json.dumps(RESULT)}\n```",
        f"Sure! Here is the result:\n{json.dumps(RESULT)}\nLet me know if you need more.",
        f"Result (see {{below}}):\n```json\n{json.dumps(RESULT)}\n```",
        f"{json.dumps(RESULT)} and again: {json.dumps(RESULT)}",  # The same object twice.
        json.dumps({**RESULT, "status": " Success ", "extra": [1, 2]}),
    ],
    ids=["bare", "fenced", "plain-fence", "prose", "stray-brace", "repeated", "lenient"],
)
def test_parses_one_result_around_noise(text: str) -> None:
    assert parse_report(text) == EXPECTED


def test_braces_inside_the_summary_are_part_of_it() -> None:
    text = json.dumps({**RESULT, "summary": "fixed {config} and } stray {"})
    report = parse_report(text)
    assert isinstance(report, AgentReport)
    assert report.summary == "fixed {config} and } stray {"


def test_summary_may_be_left_out() -> None:
    assert parse_report('{"status": "failure", "criteria": {}}') == AgentReport(
        status="failure", criteria={}, summary=""
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no JSON object"),
        ("All done, every test passes.", "no JSON object"),
        ("[1, 2, 3]", "no JSON object"),
        ('{"status": "success", "criteria": {"a": true}', "not a result object"),
        ('{"status": "done", "criteria": {}}', "status"),
        ('{"status": "success", "criteria": {"a": "yes"}}', "criteria.a"),
        ('{"status": "success"}', "criteria"),
        (f"{json.dumps(RESULT)} {json.dumps({**RESULT, 'status': 'failure'})}", "2 different"),
    ],
)
def test_unusable_text_gives_a_reason(text: str, reason: str) -> None:
    failure = parse_report(text)
    assert isinstance(failure, ParseFailure)
    assert reason in failure.reason


def test_absurd_nesting_is_a_parse_failure() -> None:
    assert isinstance(parse_report('{"a": ' + "[" * 100_000), ParseFailure)


@given(st.text())
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    assert isinstance(parse_report(text), AgentReport | ParseFailure)


@given(st.text(alphabet=st.characters(blacklist_characters="{}")), st.text())
def test_any_text_with_braces_parses_or_fails_cleanly(prose: str, tail: str) -> None:
    assert isinstance(parse_report(prose + "{" + tail + "}"), AgentReport | ParseFailure)


@given(
    status=st.sampled_from(["success", "failure"]),
    criteria=st.dictionaries(st.text(max_size=20), st.booleans(), max_size=5),
    summary=st.text(max_size=50),
    before=st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=40),
    after=st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=40),
)
def test_a_result_in_prose_round_trips(
    status: str, criteria: dict[str, bool], summary: str, before: str, after: str
) -> None:
    body = json.dumps({"status": status, "criteria": criteria, "summary": summary})
    report = parse_report(f"{before}\n{body}\n{after}")
    assert report == AgentReport.model_validate(json.loads(body))


def report(criteria: dict[str, bool], status: str = "success") -> AgentReport:
    return AgentReport.model_validate({"status": status, "criteria": criteria})


def test_judge_all_met() -> None:
    verdict = judge(report({"a": True, "b": True, "extra": False}), ["a", "b"])
    assert verdict.success
    assert verdict.criteria == {"a": True, "b": True}  # Unasked criteria are ignored.


def test_judge_missing_and_unmet() -> None:
    verdict = judge(report({"a": False}, status="failure"), ["a", "b"])
    assert not verdict.success
    assert verdict.criteria == {"a": False, "b": False}
    assert verdict.error == (
        "criteria not reported: b; unmet criteria: a; the agent reported failure"
    )


def test_judge_tolerates_case_and_spacing_of_names() -> None:
    verdict = judge(report({"Tests  Pass": True}), ["tests pass"])
    assert verdict.success
    assert verdict.criteria == {"tests pass": True}


def test_judge_reported_failure_fails() -> None:
    verdict = judge(report({"a": True}, status="failure"), ["a"])
    assert not verdict.success
    assert verdict.error == "the agent reported failure"


NOW = datetime(2025, 10, 15, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1", 1.0),
        (" 0 ", 0.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("Wed, 15 Oct 2025 12:00:07 GMT", 7.0),
        ("Wed, 15 Oct 2025 11:59:00 GMT", 0.0),  # In the past: retry now.
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_scrub_replaces_every_occurrence() -> None:
    assert scrub("key sk-1 and sk-1 again", "sk-1") == "key [redacted] and [redacted] again"
    assert scrub("nothing to hide", "") == "nothing to hide"


def test_prompt_carries_role_config_criteria_and_tier() -> None:
    agent = PlannedAgent(
        role="linter",
        strategy=TierStrategy.CHEAP_ONLY,
        depends_on=(),
        stage=0,
        config={"tools": "ruff,mypy"},
        success_criteria=("no lint errors", 'quotes "kept"'),
    )
    prompt = build_prompt(agent, Tier.CAPABLE)
    assert "ONLY one JSON object" in prompt.system
    assert "Role: linter" in prompt.user
    assert "Model tier: capable" in prompt.user
    assert '{"tools": "ruff,mypy"}' in prompt.user
    assert json.dumps(["no lint errors", 'quotes "kept"']) in prompt.user
