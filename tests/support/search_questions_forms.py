"""Labelled questions about form answers: option values, and field words that
more than one question could mean.

An option value named alone means the question it answers ("hipaa" is a
compliance framework). A field word that several questions share means the
one the rest of the question points at; with nothing to point, any of the
questions a person would mean ("coverage" is test coverage, of a package to
publish or of a coverage boost, not the documentation's docstring share).
"""

from __future__ import annotations

from tests.support.search_truth import (
    AUDIT,
    COVERAGE,
    DOCS,
    PUBLISH,
    RELEASE,
    REVIEW,
    Question,
    about,
    chose,
    either,
    every,
    flag,
    number,
    template,
    tested_coverage,
)

OPTION_VALUE = "option values"
AMBIGUOUS = "ambiguous fields"


def _option(text: str, question_id: str, option: str, *template_ids: str) -> Question:
    truth = chose(question_id, option)
    return Question(
        OPTION_VALUE, text, every(template(*template_ids), truth) if template_ids else truth
    )


def _option_values() -> list[Question]:
    return [
        _option("hipaa", "compliance_framework", "hipaa"),
        _option("jest", "test_framework", "jest"),
        _option("read the docs", "publish_target", "read_the_docs"),
        _option("strict", "strictness", "strict"),
        # Go is the language of a review, or of a project tested with go test.
        Question(
            OPTION_VALUE,
            "go",
            either(chose("primary_language", "go"), chose("test_framework", "go_test")),
        ),
        _option("soc2", "compliance_framework", "soc2"),
        _option("pci dss", "compliance_framework", "pci_dss"),
        _option("owasp asvs", "compliance_framework", "owasp_asvs"),
        _option("docusaurus", "doc_tool", "docusaurus"),
        _option("vitest", "test_framework", "vitest"),
        _option("property based tests", "test_kinds", "property_based"),
        _option("helm", "target_platforms", "helm"),
        _option("prerelease", "release_type", "prerelease"),
        _option("testpypi", "publish_target", "testpypi"),
        _option("github pages", "publish_target", "github_pages"),
        _option("lenient", "strictness", "lenient"),
        _option("typescript", "primary_language", "typescript"),
        _option("inline comments", "review_output", "inline_comments"),
        _option("end users", "audience", "end_users"),
        _option("migration guide", "release_artifacts", "migration_guide"),
        _option("snapshot tests", "test_kinds", "snapshot"),
        _option("api design", "review_focus", "api_design"),
        _option("containers", "audit_scope", "containers"),
        _option("github review", "review_output", "github_review"),
        _option("plain markdown", "doc_tool", "plain_markdown"),
        _option("ci pipeline", "audit_scope", "ci_pipeline"),
        _option("upgrade faq", "release_artifacts", "upgrade_faq"),
        _option("rust code reviews", "primary_language", "rust", REVIEW),
        _option("jest coverage boosts", "test_framework", "jest", COVERAGE),
        _option("hipaa audits", "compliance_framework", "hipaa", AUDIT),
        _option("sphinx docs", "doc_tool", "sphinx", DOCS),
        _option("release preps with an announcement", "release_artifacts", "announcement", RELEASE),
        _option("infrastructure as code audits", "audit_scope", "infrastructure_as_code", AUDIT),
        _option("docs for contributors", "audience", "contributors", DOCS),
        _option("how to guides", "doc_types", "how_to_guides"),
        _option("packages with a docs build check", "quality_checks", "docs_build", PUBLISH),
    ]


def _ambiguous() -> list[Question]:
    return [
        Question(AMBIGUOUS, "coverage above 90", tested_coverage(lambda v: v > 90)),
        Question(AMBIGUOUS, "coverage at least 85%", tested_coverage(lambda v: v >= 85)),
        Question(AMBIGUOUS, "coverage below 60", tested_coverage(lambda v: v < 60)),
        Question(AMBIGUOUS, "runs with 80 percent coverage", tested_coverage(lambda v: v == 80)),
        about(
            AMBIGUOUS,
            "python packages with coverage over 90",
            PUBLISH,
            number("test_coverage_required", lambda v: v > 90),
        ),
        about(
            AMBIGUOUS,
            "documentation with coverage over 90",
            DOCS,
            number("docstring_coverage_target", lambda v: v > 90),
        ),
        Question(
            AMBIGUOUS,
            "docstring coverage of 100",
            number("docstring_coverage_target", lambda v: v == 100),
        ),
        Question(AMBIGUOUS, "test coverage target 95", tested_coverage(lambda v: v == 95)),
        about(
            AMBIGUOUS,
            "coverage boosts aiming for 70 or less",
            COVERAGE,
            number("test_coverage_target", lambda v: v <= 70),
        ),
        about(AMBIGUOUS, "publish target pypi", PUBLISH, chose("publish_target", "pypi")),
        # PyPI is where a package is published, or a platform a release ships to.
        Question(
            AMBIGUOUS,
            "pypi",
            either(chose("publish_target", "pypi"), chose("target_platforms", "pypi")),
        ),
        Question(
            AMBIGUOUS,
            "patch",
            either(chose("version_bump", "patch"), chose("release_type", "patch")),
        ),
        Question(
            AMBIGUOUS,
            "major releases",
            either(chose("release_type", "major"), chose("version_bump", "major")),
        ),
        Question(
            AMBIGUOUS,
            "minor version bumps",
            either(chose("version_bump", "minor"), chose("release_type", "minor")),
        ),
        about(AMBIGUOUS, "reviews focused on security", REVIEW, chose("review_focus", "security")),
        about(AMBIGUOUS, "severity threshold high", AUDIT, chose("severity_threshold", "high")),
        about(
            AMBIGUOUS,
            "coverage boosts with branch coverage",
            COVERAGE,
            flag("include_branch_coverage", True),
        ),
        Question(
            AMBIGUOUS,
            "reading grade under 8",
            number("target_reading_grade", lambda v: v < 8),
        ),
        Question(AMBIGUOUS, "cvss 9 or more", number("fail_on_cvss", lambda v: v >= 9)),
        Question(
            AMBIGUOUS,
            "at least 5 green ci runs",
            number("ci_green_runs_required", lambda v: v >= 5),
        ),
        Question(
            AMBIGUOUS,
            "at most 5 new test files",
            number("max_new_test_files", lambda v: v <= 5),
        ),
        about(
            AMBIGUOUS,
            "reviews with at most 10 comments",
            REVIEW,
            number("max_comments", lambda v: v <= 10),
        ),
        about(AMBIGUOUS, "docs with no publish target", DOCS, chose("publish_target", "none")),
        about(
            AMBIGUOUS, "packages not published anywhere", PUBLISH, chose("publish_target", "none")
        ),
    ]


def form_questions() -> list[Question]:
    return [*_option_values(), *_ambiguous()]
