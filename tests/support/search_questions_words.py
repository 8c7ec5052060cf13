"""Labelled questions about words: filler words, misspellings, template names.

Written as a new user types them, without looking at how the search
understands questions. Other people will ask other questions of the same
kinds; these are samples of the kinds, not a list to satisfy.
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
    chose,
    every,
    failed,
    flag,
    mentions,
    succeeded,
    template,
)

FILLER = "filler words"
MISSPELLING = "misspellings"
TEMPLATE_NAME = "template names"


def _filler() -> list[Question]:
    """Sentences people write: the words around what they mean must not empty the answer."""
    return [
        Question(FILLER, "show me the runs that published a python package", template(PUBLISH)),
        Question(FILLER, "which code reviews failed?", every(template(REVIEW), failed)),
        Question(
            FILLER,
            "documentation runs that used sphinx",
            every(template(DOCS), chose("doc_tool", "sphinx")),
        ),
        Question(
            FILLER,
            "runs for publishing python packages with bandit checks",
            every(template(PUBLISH), chose("quality_checks", "bandit")),
        ),
        Question(
            FILLER,
            "find the security audits that were mapped to soc2",
            every(template(AUDIT), chose("compliance_framework", "soc2")),
        ),
        Question(
            FILLER,
            "all the release prep runs for a major release",
            every(template(RELEASE), chose("release_type", "major")),
        ),
        Question(
            FILLER,
            "test coverage boost runs using jest",
            every(template(COVERAGE), chose("test_framework", "jest")),
        ),
        Question(
            FILLER,
            "code reviews of go code",
            every(template(REVIEW), chose("primary_language", "go")),
        ),
        Question(
            FILLER,
            "I want the successful documentation runs written for end users",
            every(template(DOCS), succeeded, chose("audience", "end_users")),
        ),
        Question(
            FILLER,
            "runs of the code review template with a strict review",
            every(template(REVIEW), chose("strictness", "strict")),
        ),
        Question(
            FILLER,
            "what release preps shipped to npm",
            every(template(RELEASE), chose("target_platforms", "npm")),
        ),
        Question(
            FILLER,
            "list the runs that raised test coverage with mutation testing",
            every(template(COVERAGE), chose("test_kinds", "mutation")),
        ),
        Question(
            FILLER,
            "the python packages that were published to pypi",
            every(template(PUBLISH), chose("publish_target", "pypi")),
        ),
        Question(
            FILLER,
            "security audits for a service that handles personal data",
            every(template(AUDIT), flag("handles_personal_data", True)),
        ),
        Question(
            FILLER,
            "documentation that was published on read the docs",
            every(template(DOCS), chose("publish_target", "read_the_docs")),
        ),
        Question(
            FILLER,
            "reviews that were posted as inline comments",
            every(template(REVIEW), chose("review_output", "inline_comments")),
        ),
        Question(
            FILLER,
            "which release preps had breaking changes",
            every(template(RELEASE), flag("has_breaking_changes", True)),
        ),
        Question(
            FILLER,
            "coverage boosts where we allowed refactoring the source",
            every(template(COVERAGE), flag("allow_source_refactors", True)),
        ),
        Question(
            FILLER,
            "packages that were published without any tests",
            every(template(PUBLISH), flag("has_tests", False)),
        ),
        Question(
            FILLER,
            "code reviews for changes that touch the public api",
            every(template(REVIEW), flag("touches_public_api", True)),
        ),
        Question(
            FILLER,
            "show me docs runs that wrote architecture pages",
            every(template(DOCS), chose("doc_types", "architecture")),
        ),
        Question(
            FILLER,
            "audits with the severity threshold set to critical",
            every(template(AUDIT), chose("severity_threshold", "critical")),
        ),
        Question(
            FILLER,
            "any runs for the kestrel project please",
            mentions("kestrel"),
        ),
    ]


def _misspelling() -> list[Question]:
    """Typos in free words and next to words the search understands."""
    return [
        Question(MISSPELLING, "faild code reviews", every(template(REVIEW), failed)),
        Question(MISSPELLING, "failed documantation runs", every(template(DOCS), failed)),
        Question(
            MISSPELLING,
            "code reviews with a strict reveiw",
            every(template(REVIEW), chose("strictness", "strict")),
        ),
        Question(
            MISSPELLING, "sphnix documentation", every(template(DOCS), chose("doc_tool", "sphinx"))
        ),
        Question(
            MISSPELLING,
            "hipa security audits",
            every(template(AUDIT), chose("compliance_framework", "hipaa")),
        ),
        Question(
            MISSPELLING,
            "coverage boosts with unittset",
            every(template(COVERAGE), chose("test_framework", "unittest")),
        ),
        Question(
            MISSPELLING,
            "release preps for a majr release",
            every(template(RELEASE), chose("release_type", "major")),
        ),
        Question(
            MISSPELLING,
            "package publish with bandti",
            every(template(PUBLISH), chose("quality_checks", "bandit")),
        ),
        Question(
            MISSPELLING, "docusarus docs", every(template(DOCS), chose("doc_tool", "docusaurus"))
        ),
        Question(MISSPELLING, "succesful release preps", every(template(RELEASE), succeeded)),
        Question(
            MISSPELLING,
            "code reviews in typscript",
            every(template(REVIEW), chose("primary_language", "typescript")),
        ),
        Question(
            MISSPELLING,
            "mutaton testing coverage boosts",
            every(template(COVERAGE), chose("test_kinds", "mutation")),
        ),
        Question(
            MISSPELLING,
            "documentation published to github pagse",
            every(template(DOCS), chose("publish_target", "github_pages")),
        ),
        Question(
            MISSPELLING,
            "packages published to tsetpypi",
            every(template(PUBLISH), chose("publish_target", "testpypi")),
        ),
        Question(
            MISSPELLING,
            "rust code reviews that faild",
            every(template(REVIEW), chose("primary_language", "rust"), failed),
        ),
        Question(MISSPELLING, "runs for fastcvs", mentions("fastcsv")),
        Question(MISSPELLING, "kestral", mentions("kestrel")),
        Question(MISSPELLING, "harbor synk", mentions("harbor-sync")),
        Question(
            MISSPELLING,
            "audits with soc2 that succeded",
            every(template(AUDIT), chose("compliance_framework", "soc2"), succeeded),
        ),
        Question(
            MISSPELLING,
            "docs for opertors",
            every(template(DOCS), chose("audience", "operators")),
        ),
    ]


def _template_name() -> list[Question]:
    """A template named the way people say it: plural, -ing, typos, articles, ids."""
    return [
        Question(TEMPLATE_NAME, "security audits", template(AUDIT)),
        Question(TEMPLATE_NAME, "a security audit", template(AUDIT)),
        Question(TEMPLATE_NAME, "security auditing", template(AUDIT)),
        Question(TEMPLATE_NAME, "the securty audit", template(AUDIT)),
        Question(TEMPLATE_NAME, "code reviews", template(REVIEW)),
        Question(TEMPLATE_NAME, "reviewing a pull request", template(REVIEW)),
        Question(TEMPLATE_NAME, "pull request reviews", template(REVIEW)),
        Question(TEMPLATE_NAME, "code reveiws", template(REVIEW)),
        Question(TEMPLATE_NAME, "release preps", template(RELEASE)),
        Question(TEMPLATE_NAME, "preparing a release", template(RELEASE)),
        Question(TEMPLATE_NAME, "release preparation", template(RELEASE)),
        Question(TEMPLATE_NAME, "relese prep", template(RELEASE)),
        Question(TEMPLATE_NAME, "publishing a python package", template(PUBLISH)),
        Question(TEMPLATE_NAME, "python package publishing", template(PUBLISH)),
        Question(TEMPLATE_NAME, "published python packages", template(PUBLISH)),
        Question(TEMPLATE_NAME, "pyhton package publish", template(PUBLISH)),
        Question(TEMPLATE_NAME, "test coverage boosts", template(COVERAGE)),
        Question(TEMPLATE_NAME, "raising test coverage", template(COVERAGE)),
        Question(TEMPLATE_NAME, "test covrage boost", template(COVERAGE)),
        Question(TEMPLATE_NAME, "the documentation template", template(DOCS)),
        Question(TEMPLATE_NAME, "writing documentation", template(DOCS)),
        Question(TEMPLATE_NAME, "documentaton", template(DOCS)),
        Question(TEMPLATE_NAME, "code_review", template(REVIEW)),
        Question(TEMPLATE_NAME, "test_coverage_boost runs", template(COVERAGE)),
        Question(TEMPLATE_NAME, "release-prep", template(RELEASE)),
        Question(TEMPLATE_NAME, "security audit", template(AUDIT)),
    ]


def word_questions() -> list[Question]:
    return [*_filler(), *_misspelling(), *_template_name()]
