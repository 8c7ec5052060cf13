"""Query understanding from the templates' forms: template names in any
inflection and with typos, option values as filters on the question they
answer, yes/no questions, number questions by id or label with their range
and unit, and ambiguity settled by the named template, then closeness, else
an OR. Checked on the built-in templates and on a template of another
domain, so nothing here leans on the built-ins' wording."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_service.search import form_compile, understanding
from memory_service.search.filter import Restriction, compile_filter, matches, parse_filter, to_text
from memory_service.search.forms import (
    FormCatalog,
    FormQuestion,
    FormTemplate,
    QuestionKind,
    load_forms,
)
from memory_service.search.planning import PlanError, plan_search
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.search.understanding import Understanding, Vocabulary, understand

NOW = datetime(2026, 3, 18, 14, 30, tzinfo=UTC)
SELECT, MULTI = QuestionKind.SINGLE_SELECT, QuestionKind.MULTI_SELECT
INCIDENT = FormTemplate(
    "incident_review",
    "Review an incident",
    "What happened, and what to change.",
    ("operations",),
    (
        FormQuestion("severity", "How severe was the incident?", SELECT, ("sev1", "sev2", "minor")),
        FormQuestion(
            "affected_services",
            "Which services were affected?",
            MULTI,
            ("api_gateway", "billing", "search_cluster", "other"),
        ),
        FormQuestion("customer_facing", "Did customers notice?", QuestionKind.BOOLEAN),
        FormQuestion("pages_customers", "Were customers paged?", QuestionKind.BOOLEAN),
        FormQuestion(
            "downtime_minutes", "How many minutes of downtime?", QuestionKind.NUMBER, (), 0, 10000
        ),
        FormQuestion(
            "runbook_followed",
            "What share of the runbook was followed, in percent?",
            QuestionKind.NUMBER,
            (),
            0,
            100,
            "percent",
        ),
        FormQuestion("postmortem_language", "Which language?", SELECT, ("go", "english")),
    ),
)
FORMS = FormCatalog.of([*load_forms(None).catalog.templates, INCIDENT])
VOCABULARY = Vocabulary({}, (), FORMS)


def run(query: str, vocabulary: Vocabulary = VOCABULARY) -> Understanding:
    result = understand(query, vocabulary, NOW)
    compile_filter(result.filter_text, PATTERN_SCHEMA)
    return result


def either(op: str, value: str, *questions: str) -> str:
    return " OR ".join(f"form_responses.{question} {op} {value}" for question in questions)


@pytest.mark.parametrize(
    ("query", "template"),
    [
        ("security audits", "security_audit"),
        ("a security audit", "security_audit"),
        ("security-audit runs", "security_audit"),
        ("secuirty audit", "security_audit"),
        ("code reviews", "code_review"),
        ("reviewing code", None),  # Word order is kept: not the name.
        ("code reveiw runs", "code_review"),
        ("publishing python packages", "python_package_publish"),
        ("python-package-publish", "python_package_publish"),
        ("preparing a release", "release_prep"),
        ("release preps", "release_prep"),
        ("raising test coverage", "test_coverage_boost"),
        ("documentation workflows", "documentation"),
        ("documantation runs", "documentation"),
        ("template: documentation", "documentation"),
        ("incident reviews", "incident_review"),
        ("reviewing an incident", "incident_review"),
        ("incidnet review", "incident_review"),
    ],
)
def test_template_names_in_any_inflection_and_with_typos(query: str, template: str | None) -> None:
    result = run(query)
    expected = f'template_id = "{template}"' if template else ""
    assert result.filter_text == expected
    if template:
        assert result.remaining_query == ""


def test_template_ids_only_the_data_knows_are_read_by_stem_never_by_guess() -> None:
    data = Vocabulary({"flaky_hunt": "flaky hunt"}, (), FORMS)
    assert run("flaky hunts", data).filter_text == 'template_id = "flaky_hunt"'
    assert run("flakey hunt", data).filter_text == ""  # No fuzzy reading of unknown names.


@pytest.mark.parametrize(
    ("query", "expected", "remaining"),
    [
        ("hipaa", 'form_responses.compliance_framework = "hipaa"', ""),
        ("jest", 'form_responses.test_framework = "jest"', ""),
        ("read the docs", 'form_responses.publish_target = "read_the_docs"', ""),
        ("published on read-the-docs", 'form_responses.publish_target = "read_the_docs"', ""),
        ("readthedocs", 'form_responses.publish_target = "read_the_docs"', ""),
        ("strict reviews", 'form_responses.strictness = "strict"', ""),
        ("test framework: vitest", 'form_responses.test_framework = "vitest"', ""),
        ("sev1 incidents", 'form_responses.severity = "sev1"', ""),  # The label's word.
        ("billing outage", 'form_responses.affected_services = "billing"', "outage"),
        ("api gateway", 'form_responses.affected_services = "api_gateway"', ""),
        ("pytset", 'form_responses.test_framework = "pytest"', ""),
        ("hipa compliance", 'form_responses.compliance_framework = "hipaa"', ""),
        ("docusarus builds", 'form_responses.doc_tool = "docusaurus"', ""),
        ("docusarus outages", 'form_responses.doc_tool = "docusaurus"', "outages"),
        ("searchcluster", 'form_responses.affected_services = "search_cluster"', ""),
    ],
)
def test_option_values_filter_the_question_that_offers_them(
    query: str, expected: str, remaining: str
) -> None:
    result = run(query)
    assert (result.filter_text, result.remaining_query) == (expected, remaining)


def test_a_value_of_a_multi_select_question_matches_runs_that_chose_it() -> None:
    tree = compile_filter(run("billing and search cluster").filter_text, PATTERN_SCHEMA)
    chosen = {"form_responses": {"affected_services": ["search_cluster", "billing"]}}
    assert matches(tree, chosen, PATTERN_SCHEMA)
    assert not matches(tree, {"form_responses": {"affected_services": ["billing"]}}, PATTERN_SCHEMA)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("go", ""),
        ("let it go", ""),
        # Two questions offer "go": an OR, unless the words or a template decide.
        ("runs in go", either("=", '"go"', "postmortem_language", "primary_language")),
        ("written in go", either("=", '"go"', "postmortem_language", "primary_language")),
        (
            "code review go",
            'template_id = "code_review" AND form_responses.primary_language = "go"',
        ),
        ("main language go", 'form_responses.primary_language = "go"'),
        ("standard", ""),
        ("standard strictness", 'form_responses.strictness = "standard"'),
        ("major", ""),
        ("major release", 'form_responses.release_type = "major"'),
        ("minor version bump", 'form_responses.version_bump = "minor"'),
        ("minor", ""),
        ("none", ""),
        ("publish target none", 'form_responses.publish_target = "none"'),
        ("the other runs", ""),
        ("incident review other", 'template_id = "incident_review"'),  # "other" wants its words.
        ("other services affected", 'form_responses.affected_services = "other"'),
        ("all runs", ""),
        ("high", ""),
        ("high severity", 'form_responses.severity_threshold = "high"'),
        ("python package", ""),
    ],
)
def test_values_spelled_like_everyday_words_need_context(query: str, expected: str) -> None:
    assert run(query).filter_text == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # No context: every question offering the value.
        ("pypi", either("=", '"pypi"', "publish_target", "target_platforms")),
        ("patch", either("=", '"patch"', "release_type", "version_bump")),
        # The template named in the same question decides.
        (
            "release prep pypi",
            'template_id = "release_prep" AND form_responses.target_platforms = "pypi"',
        ),
        (
            "pypi python package publish",
            'form_responses.publish_target = "pypi" AND template_id = "python_package_publish"',
        ),
        # Then the question's words nearby.
        ("published to pypi", 'form_responses.publish_target = "pypi"'),
        ("distributed on pypi", 'form_responses.target_platforms = "pypi"'),
        ("patch version bump", 'form_responses.version_bump = "patch"'),
        ("patch release", 'form_responses.release_type = "patch"'),
    ],
)
def test_a_value_several_questions_offer(query: str, expected: str) -> None:
    assert run(query).filter_text == expected


COVERAGE = ("test_coverage_required", "test_coverage_target")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("coverage above 80", either(">", "80", *COVERAGE)),
        ("at least 90 percent coverage", either(">=", "90", *COVERAGE)),
        ("coverage 80%", either("=", "80", *COVERAGE)),
        ("line coverage of 70", either("=", "70", *COVERAGE)),
        ("docstring coverage >= 90", "form_responses.docstring_coverage_target >= 90"),
        (
            "python package publish with coverage above 80",
            'template_id = "python_package_publish" AND form_responses.test_coverage_required > 80',
        ),
        (
            "coverage above 80 in test coverage boosts",
            'form_responses.test_coverage_target > 80 AND template_id = "test_coverage_boost"',
        ),
        ("max comments under 10", "form_responses.max_comments < 10"),
        ("at most 10 review comments", "form_responses.max_comments <= 10"),
        ("cvss 7", "form_responses.fail_on_cvss = 7"),
        ("score above 7", "form_responses.fail_on_cvss > 7"),
        ("downtime over 30 minutes", "form_responses.downtime_minutes > 30"),
        ("runbook followed at least 90%", "form_responses.runbook_followed >= 90"),
        (
            "coverage between 70 and 90",
            "(form_responses.test_coverage_required >= 70 AND "
            "form_responses.test_coverage_required <= 90) OR "
            "(form_responses.test_coverage_target >= 70 AND "
            "form_responses.test_coverage_target <= 90)",
        ),
        (
            "max comments 5-10",
            "form_responses.max_comments >= 5 AND form_responses.max_comments <= 10",
        ),
    ],
)
def test_number_questions_by_their_id_and_label(query: str, expected: str) -> None:
    result = run(query)
    assert (result.filter_text, result.remaining_query) == (expected, "")


def test_a_bare_number_needs_words_of_the_questions_id() -> None:
    assert run("release 2").filter_text == ""  # "release" is in a label only.
    assert run("green ci runs 2").filter_text == "form_responses.ci_green_runs_required = 2"


def test_a_number_a_question_cannot_hold_prefers_one_that_can() -> None:
    unit = FormQuestion("minutes", "How long?", QuestionKind.NUMBER, (), 0, 60)
    share = FormQuestion(
        "minutes_share", "Share, in percent?", QuestionKind.NUMBER, (), 0, 100, "percent"
    )
    big = FormQuestion("minutes_total", "Total?", QuestionKind.NUMBER, (), 0, 10_000)
    catalog = FormCatalog.of([FormTemplate("t", "T", questions=(unit, share, big))])
    vocabulary = Vocabulary({}, (), catalog)
    assert run("minutes above 50%", vocabulary).filter_text == "form_responses.minutes_share > 50"
    assert run("minutes above 500", vocabulary).filter_text == "form_responses.minutes_total > 500"
    assert run("minutes above 5", vocabulary).filter_text == either(
        ">", "5", "minutes", "minutes_share", "minutes_total"
    )


def test_the_callers_filter_names_the_template_too() -> None:
    plan = plan_search(
        "coverage above 80", 'template_id = "test_coverage_boost"', True, ([], []), NOW, FORMS
    )
    assert plan.applied_filter == (
        'template_id = "test_coverage_boost" AND form_responses.test_coverage_target > 80'
    )
    assert plan.interpretations == (
        '"coverage above 80" -> form_responses.test_coverage_target > 80',
    )
    ambiguous = plan_search("coverage above 80", "", True, ([], []), NOW, FORMS)
    assert ambiguous.applied_filter == either(">", "80", *COVERAGE)
    assert ambiguous.interpretations == (
        f'"coverage above 80" -> ({either(">", "80", *COVERAGE)})',
    )


@pytest.mark.parametrize(
    ("query", "expected", "remaining"),
    [
        ("touching the public api", "form_responses.touches_public_api = true", ""),
        ("reviews that touch a public API", "form_responses.touches_public_api = true", "reviews"),
        ("doesn't touch the public api", "form_responses.touches_public_api = false", ""),
        ("without static analysis", "form_responses.run_static_analysis = false", ""),
        ("with static analysis", "form_responses.run_static_analysis = true", ""),
        ("no breaking changes", "form_responses.has_breaking_changes = false", ""),
        ("internet facing: no", "form_responses.internet_facing = false", ""),
        ("not internet-facing", "form_responses.internet_facing = false", ""),
        ("customer facing incidents", "form_responses.customer_facing = true", "incidents"),
        ("customers not paged", "", "customers not paged"),  # Not the id's wording.
        ("pages customers", "form_responses.pages_customers = true", ""),
    ],
)
def test_yes_no_questions(query: str, expected: str, remaining: str) -> None:
    result = run(query)
    assert (result.filter_text, result.remaining_query) == (expected, remaining)


def test_everything_at_once_over_a_custom_form() -> None:
    result = run("failed incident reviews last week with sev1 billing outages and downtime over 60")
    assert result.filter_text == (
        'success = false AND template_id = "incident_review" '
        'AND create_time >= "2026-03-11T14:30:00Z" AND form_responses.severity = "sev1" '
        'AND form_responses.affected_services = "billing" '
        "AND form_responses.downtime_minutes > 60"
    )
    assert result.remaining_query == "outages"


@pytest.mark.parametrize(
    ("query", "expected", "remaining"),
    [
        # "N or more", "N+" after a question's words.
        ("cvss 9 or more", "form_responses.fail_on_cvss >= 9", ""),
        ("max comments 10 or fewer", "form_responses.max_comments <= 10", ""),
        ("coverage 80+", either(">=", "80", *COVERAGE), ""),
        # A one-word template name settles a question without filtering on the word.
        (
            "documentation with coverage over 90",
            "form_responses.docstring_coverage_target > 90",
            "documentation",
        ),
        # A yes/no question takes its label's words along.
        (
            "security audits for a service that handles personal data",
            'template_id = "security_audit" AND form_responses.handles_personal_data = true',
            "",
        ),
        (
            "changes that don't touch the public api",
            "form_responses.touches_public_api = false",
            "",
        ),
        # has_tests by its last word, only after with/without/no.
        ("packages without any tests", "form_responses.has_tests = false", ""),
        ("with tests", "form_responses.has_tests = true", ""),
        ("tests", "", "tests"),
        # "no <question>": its option "none".
        ("docs with no publish target", 'form_responses.publish_target = "none"', "docs"),
        ("without a version bump", 'form_responses.version_bump = "none"', ""),
        ("publish target", "", "publish target"),
        # A misspelt plural; the window counts words, not stop words.
        ("code reveiws", 'template_id = "code_review"', ""),
        (
            "docs runs that wrote architecture pages",
            'form_responses.doc_types = "architecture"',
            "docs runs that wrote pages",
        ),
    ],
)
def test_phrasings_around_a_question(query: str, expected: str, remaining: str) -> None:
    result = run(query)
    assert (result.filter_text, result.remaining_query) == (expected, remaining)


@pytest.mark.parametrize(
    "query",
    ["flaky upload timeout", "interval between retries", "ready for review", "the operations team"],
)
def test_ordinary_words_are_not_taken_for_names(query: str) -> None:
    assert run(query).filter_text == ""


def test_quoted_words_are_never_read_as_values() -> None:
    result = run('"hipaa" jest')
    assert result.filter_text == 'form_responses.test_framework = "jest"'
    assert result.remaining_query == '"hipaa"'


def test_a_lexicon_is_compiled_once_per_catalog() -> None:
    form_compile.compile_lexicon.cache_clear()
    for query in ("hipaa", "jest", "coverage above 80", "security audits"):
        run(query)
    info = form_compile.compile_lexicon.cache_info()
    assert (info.misses, info.hits) == (1, 3)


def test_misspellings_are_tried_for_the_first_words_only() -> None:
    unknown = " ".join(f"zq{letter}word" for letter in "abcdefghijklmnopqrstuvwxyz")
    assert run("flurbo secuirty audit").filter_text == 'template_id = "security_audit"'
    assert run(f"{unknown} secuirty audit").filter_text == ""  # Past the bound: a word.
    assert run(f"{unknown} security audit").filter_text == 'template_id = "security_audit"'


def test_understanding_does_not_depend_on_what_was_asked_before() -> None:
    queries = ["secuirties audit", "secuirty audit", "pytsets", "pytset", "hipa", "hipaas"]
    form_compile.compile_lexicon.cache_clear()
    fresh = []
    for query in queries:
        form_compile.compile_lexicon.cache_clear()
        fresh.append(run(query))
    assert [run(query) for query in queries] == fresh
    assert [run(query) for query in reversed(queries)] == fresh[::-1]


def test_planning_a_typical_question_takes_well_under_a_millisecond() -> None:
    queries = [
        "failed python package publish runs with coverage above 80%",
        "security audits with hipaa compliance",
        "strict code reviews in go touching the public api",
        "flaky upload timeout",
    ]
    for query in queries:  # Warm: the lexicon and the validity cache.
        plan_search(query, "", True, ([], []), NOW, FORMS)
    timings: list[float] = []
    for _ in range(30):
        for query in queries:
            started = time.perf_counter()
            plan_search(query, "", True, ([], []), NOW, FORMS)
            timings.append(time.perf_counter() - started)
    timings.sort()
    # About 0.3 ms each on a quiet machine; generous for a loaded 2-core one.
    assert timings[len(timings) // 2] < 0.003


def _record(**answers: Any) -> dict[str, Any]:
    return {"form_responses": answers}


def test_understood_filters_select_what_the_words_say() -> None:
    tree = compile_filter(run("coverage above 80").filter_text, PATTERN_SCHEMA)
    assert matches(tree, _record(test_coverage_target=85.0), PATTERN_SCHEMA)
    assert matches(tree, _record(test_coverage_required=90.0), PATTERN_SCHEMA)
    assert not matches(tree, _record(docstring_coverage_target=95.0), PATTERN_SCHEMA)
    negated = compile_filter(run("without static analysis").filter_text, PATTERN_SCHEMA)
    assert matches(negated, _record(run_static_analysis=False), PATTERN_SCHEMA)
    assert not matches(negated, _record(run_static_analysis=True), PATTERN_SCHEMA)


# --- properties ------------------------------------------------------------------

_WORDS = st.sampled_from(
    [
        *("go", "none", "other", "all", "minor", "major", "test", "tests", "coverage"),
        *("review", "release", "publish", "python", "docs", "audit", "security", "api"),
        *("the", "a", "runs", "with", "in", "using", "not", "without", "no", "template"),
        *("billing", "gateway", "\u017fum", "\u0130stanbul", "naïve", "x", "q1", "80%", ">=", "at"),
    ]
)
_IDS = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_LABELS = st.lists(_WORDS, max_size=6).map(" ".join) | _TEXT
_VALUES = st.lists(_WORDS, min_size=1, max_size=3).map("_".join) | _TEXT
_BOUNDS = st.none() | st.floats(-1e6, 1e6, allow_nan=False)


@st.composite
def _questions(draw: st.DrawFn) -> FormQuestion:
    kind = draw(st.sampled_from(list(QuestionKind)))
    selects = (QuestionKind.SINGLE_SELECT, QuestionKind.MULTI_SELECT)
    options = tuple(draw(st.lists(_VALUES, min_size=1, max_size=4))) if kind in selects else ()
    low, high = draw(_BOUNDS), draw(_BOUNDS)
    if low is not None and high is not None and low > high:
        low, high = high, low
    unit = draw(st.sampled_from(["", "percent"])) if kind is QuestionKind.NUMBER else ""
    return FormQuestion(draw(_IDS), draw(_LABELS), kind, options, low, high, unit)


_TEMPLATES = st.builds(
    FormTemplate,
    _IDS,
    _LABELS,
    _LABELS,
    st.lists(_WORDS, max_size=3).map(tuple),
    st.lists(_questions(), max_size=5).map(tuple),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_TEMPLATES, max_size=4),
    st.lists(_IDS, max_size=3),
    st.lists(
        _WORDS | _TEXT | st.sampled_from(['"', "80", "7.5", "between 1 and 2", "-"]), max_size=14
    ),
    st.booleans(),
)
def test_any_query_over_any_catalog_understands_to_a_filter_that_compiles(
    templates: list[FormTemplate], data_ids: list[str], words: list[str], with_builtins: bool
) -> None:
    catalog = FormCatalog.of([*(FORMS.templates if with_builtins else ()), *templates])
    query = " ".join(words)
    vocabulary = Vocabulary({i: i.replace("_", " ") for i in data_ids}, data_ids, catalog)
    result = understand(query, vocabulary, NOW)
    assert compile_filter(result.filter_text, PATTERN_SCHEMA) == result.tree
    for phrase in (note.split('" -> ')[0][1:] for note in result.interpretations):
        assert phrase  # Every term says which words it stands for.
    try:
        plan = plan_search(query[:1024], "", True, (data_ids, data_ids), NOW, catalog)
    except PlanError:
        return  # Nothing left to search for: a precise error, not a crash.
    assert compile_filter(plan.applied_filter, PATTERN_SCHEMA) == plan.condition


_NAMES = st.sampled_from(["form_responses", "a", "AND", "true", "x-y", "_q", "1a", "a.b", ""])
_VALUES_ANY = (
    st.text(st.characters(codec="utf-8"), max_size=8)
    | st.text(max_size=4)  # Lone surrogates too.
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(_NAMES, min_size=1, max_size=3), st.sampled_from(["=", "<", ">=", "!="]), _VALUES_ANY
)
def test_a_term_said_to_print_back_parses_back_to_itself(
    path: list[str], op: str, value: str | float | bool
) -> None:
    """Understanding skips the parser for terms _prints_back accepts: they must
    be exactly those the parser would give back unchanged."""
    term = Restriction(tuple(path), op, value)
    if understanding._prints_back(term):
        assert parse_filter(to_text(term)) == term
