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
    about,
    chose,
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
        about(FILLER, "which code reviews failed?", REVIEW, failed),
        about(FILLER, "documentation runs that used sphinx", DOCS, chose("doc_tool", "sphinx")),
        about(
            FILLER,
            "runs for publishing python packages with bandit checks",
            PUBLISH,
            chose("quality_checks", "bandit"),
        ),
        about(
            FILLER,
            "find the security audits that were mapped to soc2",
            AUDIT,
            chose("compliance_framework", "soc2"),
        ),
        about(
            FILLER,
            "all the release prep runs for a major release",
            RELEASE,
            chose("release_type", "major"),
        ),
        about(
            FILLER, "test coverage boost runs using jest", COVERAGE, chose("test_framework", "jest")
        ),
        about(FILLER, "code reviews of go code", REVIEW, chose("primary_language", "go")),
        about(
            FILLER,
            "I want the successful documentation runs written for end users",
            DOCS,
            succeeded,
            chose("audience", "end_users"),
        ),
        about(
            FILLER,
            "runs of the code review template with a strict review",
            REVIEW,
            chose("strictness", "strict"),
        ),
        about(
            FILLER, "what release preps shipped to npm", RELEASE, chose("target_platforms", "npm")
        ),
        about(
            FILLER,
            "list the runs that raised test coverage with mutation testing",
            COVERAGE,
            chose("test_kinds", "mutation"),
        ),
        about(
            FILLER,
            "the python packages that were published to pypi",
            PUBLISH,
            chose("publish_target", "pypi"),
        ),
        about(
            FILLER,
            "security audits for a service that handles personal data",
            AUDIT,
            flag("handles_personal_data", True),
        ),
        about(
            FILLER,
            "documentation that was published on read the docs",
            DOCS,
            chose("publish_target", "read_the_docs"),
        ),
        about(
            FILLER,
            "reviews that were posted as inline comments",
            REVIEW,
            chose("review_output", "inline_comments"),
        ),
        about(
            FILLER,
            "which release preps had breaking changes",
            RELEASE,
            flag("has_breaking_changes", True),
        ),
        about(
            FILLER,
            "coverage boosts where we allowed refactoring the source",
            COVERAGE,
            flag("allow_source_refactors", True),
        ),
        about(
            FILLER,
            "packages that were published without any tests",
            PUBLISH,
            flag("has_tests", False),
        ),
        about(
            FILLER,
            "code reviews for changes that touch the public api",
            REVIEW,
            flag("touches_public_api", True),
        ),
        about(
            FILLER,
            "show me docs runs that wrote architecture pages",
            DOCS,
            chose("doc_types", "architecture"),
        ),
        about(
            FILLER,
            "audits with the severity threshold set to critical",
            AUDIT,
            chose("severity_threshold", "critical"),
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
        about(MISSPELLING, "faild code reviews", REVIEW, failed),
        about(MISSPELLING, "failed documantation runs", DOCS, failed),
        about(
            MISSPELLING, "code reviews with a strict reveiw", REVIEW, chose("strictness", "strict")
        ),
        about(MISSPELLING, "sphnix documentation", DOCS, chose("doc_tool", "sphinx")),
        about(MISSPELLING, "hipa security audits", AUDIT, chose("compliance_framework", "hipaa")),
        about(
            MISSPELLING,
            "coverage boosts with unittset",
            COVERAGE,
            chose("test_framework", "unittest"),
        ),
        about(
            MISSPELLING, "release preps for a majr release", RELEASE, chose("release_type", "major")
        ),
        about(
            MISSPELLING, "package publish with bandti", PUBLISH, chose("quality_checks", "bandit")
        ),
        about(MISSPELLING, "docusarus docs", DOCS, chose("doc_tool", "docusaurus")),
        about(MISSPELLING, "succesful release preps", RELEASE, succeeded),
        about(
            MISSPELLING,
            "code reviews in typscript",
            REVIEW,
            chose("primary_language", "typescript"),
        ),
        about(
            MISSPELLING,
            "mutaton testing coverage boosts",
            COVERAGE,
            chose("test_kinds", "mutation"),
        ),
        about(
            MISSPELLING,
            "documentation published to github pagse",
            DOCS,
            chose("publish_target", "github_pages"),
        ),
        about(
            MISSPELLING,
            "packages published to tsetpypi",
            PUBLISH,
            chose("publish_target", "testpypi"),
        ),
        about(
            MISSPELLING,
            "rust code reviews that faild",
            REVIEW,
            chose("primary_language", "rust"),
            failed,
        ),
        Question(MISSPELLING, "runs for fastcvs", mentions("fastcsv")),
        Question(MISSPELLING, "kestral", mentions("kestrel")),
        Question(MISSPELLING, "harbor synk", mentions("harbor-sync")),
        about(
            MISSPELLING,
            "audits with soc2 that succeded",
            AUDIT,
            chose("compliance_framework", "soc2"),
            succeeded,
        ),
        about(MISSPELLING, "docs for opertors", DOCS, chose("audience", "operators")),
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
