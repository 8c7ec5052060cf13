"""Labelled questions about how runs went: tiers and escalation, SENSITIVE
best matches, plain facts (cost, agents, time, outcome) and exact control
(phrases, +required, -excluded, explicit filters)."""

from __future__ import annotations

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from tests.support.search_corpus_specs import ASKER, OTHER
from tests.support.search_truth import (
    AUDIT,
    CAPABLE,
    CHEAP,
    COVERAGE,
    DOCS,
    PREMIUM,
    PUBLISH,
    RELEASE,
    REVIEW,
    Question,
    about,
    agent,
    agents,
    any_skipped,
    any_tier,
    anything,
    chose,
    cost,
    escalated,
    escalated_to,
    escalated_under,
    every,
    failed,
    flag,
    mentions,
    negated,
    no_tier,
    only_tier,
    sensitive_of,
    succeeded,
    template,
    whole_team_on,
)

TIERS = "tier quantifiers"
SENSITIVE = "sensitive best match"
PLAIN = "plain facts"
EXACT = "exact control"
FAILED_AGENT = executor_pb2.AGENT_STATUS_FAILED
SUCCEEDED_AGENT = executor_pb2.AGENT_STATUS_SUCCEEDED


def _tiers() -> list[Question]:
    progressive = common_pb2.TIER_STRATEGY_PROGRESSIVE
    return [
        Question(TIERS, "only cheap agents", only_tier(CHEAP)),
        Question(TIERS, "runs that used only cheap agents", only_tier(CHEAP)),
        Question(TIERS, "runs where every agent was cheap", only_tier(CHEAP)),
        Question(TIERS, "escalated to premium", escalated_to(PREMIUM)),
        Question(TIERS, "runs where an agent escalated to premium", escalated_to(PREMIUM)),
        Question(TIERS, "escalated to capable", escalated_to(CAPABLE)),
        Question(TIERS, "progressive escalation", escalated_under(progressive)),
        Question(TIERS, "runs with progressive escalation", escalated_under(progressive)),
        Question(TIERS, "no premium agents", no_tier(PREMIUM)),
        Question(TIERS, "runs without any premium agent", no_tier(PREMIUM)),
        Question(TIERS, "runs with a premium agent", any_tier(PREMIUM)),
        Question(TIERS, "all agents premium", only_tier(PREMIUM)),
        Question(TIERS, "at least one cheap agent", any_tier(CHEAP)),
        Question(TIERS, "every agent on the capable tier", only_tier(CAPABLE)),
        Question(TIERS, "runs that escalated", escalated),
        Question(TIERS, "runs with no escalation", negated(escalated)),
        about(TIERS, "code reviews that only used cheap agents", REVIEW, only_tier(CHEAP)),
        Question(
            TIERS, "failed runs that escalated to premium", every(failed, escalated_to(PREMIUM))
        ),
        about(TIERS, "security audits with no premium agent", AUDIT, no_tier(PREMIUM)),
        about(TIERS, "documentation runs where an agent had to escalate", DOCS, escalated),
        Question(
            TIERS,
            "runs on the premium only strategy",
            whole_team_on(common_pb2.TIER_STRATEGY_PREMIUM_ONLY),
        ),
        Question(
            TIERS,
            "runs using the cheap only tier strategy",
            whole_team_on(common_pb2.TIER_STRATEGY_CHEAP_ONLY),
        ),
        Question(
            TIERS,
            "capable first runs",
            whole_team_on(common_pb2.TIER_STRATEGY_CAPABLE_FIRST),
        ),
        about(
            TIERS,
            "successful release preps without escalation",
            RELEASE,
            succeeded,
            negated(escalated),
        ),
    ]


def _sensitive() -> list[Question]:
    """The asker's own SENSITIVE run may be the best match, and must be allowed
    to rank first; another user's SENSITIVE runs are never relevant (nor shown)."""
    salary_exporter = every(mentions("salary"), mentions("exporter"))
    return [
        Question(SENSITIVE, "salary exporter", salary_exporter),
        Question(SENSITIVE, "payroll exporter", mentions("payroll")),
        Question(SENSITIVE, "the salary exporter package publish", salary_exporter),
        Question(SENSITIVE, "salary", mentions("salary")),
        Question(SENSITIVE, "salary", mentions("salary"), asker=OTHER),
        Question(SENSITIVE, "salary calculator", mentions("salary band"), asker=OTHER),
        Question(SENSITIVE, "confidential handbook", mentions("confidential onboarding")),
        Question(SENSITIVE, "confidential docs built with sphinx", mentions("confidential")),
        Question(
            SENSITIVE, "confidential pricing wiki", mentions("confidential pricing"), asker=OTHER
        ),
        Question(SENSITIVE, "confidential documentation", mentions("confidential"), asker=OTHER),
        Question(SENSITIVE, "my sensitive runs", sensitive_of(ASKER)),
        about(
            SENSITIVE,
            "hipaa security audits",
            AUDIT,
            chose("compliance_framework", "hipaa"),
            asker=OTHER,
        ),
        about(SENSITIVE, "failed security audits", AUDIT, failed, asker=OTHER),
        about(
            SENSITIVE,
            "security audits of internet facing services",
            AUDIT,
            flag("internet_facing", True),
        ),
        Question(
            SENSITIVE,
            "exporter runs",
            mentions("exporter"),
        ),
    ]


def _plain() -> list[Question]:
    return [
        Question(PLAIN, "failed runs", failed),
        Question(PLAIN, "successful runs", succeeded),
        Question(PLAIN, "runs that cost more than $0.20", cost(lambda c: c > 0.2)),
        Question(PLAIN, "runs under 1 cent", cost(lambda c: c < 0.01)),
        Question(PLAIN, "runs cheaper than $0.05", cost(lambda c: c < 0.05)),
        Question(
            PLAIN, "runs costing between 0.1 and 0.3 dollars", cost(lambda c: 0.1 <= c <= 0.3)
        ),
        Question(PLAIN, "runs with more than 6 agents", agents(lambda n: n > 6)),
        Question(PLAIN, "runs with 3 agents", agents(lambda n: n == 3)),
        Question(PLAIN, "runs with fewer than 4 agents", agents(lambda n: n < 4)),
        Question(PLAIN, "runs in the last 24 hours", anything),
        Question(PLAIN, "failed runs in the past week", failed),
        about(PLAIN, "successful code reviews", REVIEW, succeeded),
        about(PLAIN, "security audits that cost over $0.15", AUDIT, cost(lambda c: c > 0.15)),
        about(
            PLAIN, "documentation runs that cost less than 5 cents", DOCS, cost(lambda c: c < 0.05)
        ),
        about(PLAIN, "release preps with more than 7 agents", RELEASE, agents(lambda n: n > 7)),
        Question(PLAIN, "runs where the diff analyst failed", agent("diff_analyst", FAILED_AGENT)),
        Question(
            PLAIN,
            "runs where the mutation tester succeeded",
            agent("mutation_tester", SUCCEEDED_AGENT),
        ),
        Question(PLAIN, "runs with skipped agents", any_skipped),
        about(
            PLAIN, "publish runs where the linter failed", PUBLISH, agent("linter", FAILED_AGENT)
        ),
        Question(PLAIN, "runs that failed in the last hour", failed),
        about(PLAIN, "failed coverage boosts", COVERAGE, failed),
    ]


def _exact() -> list[Question]:
    return [
        Question(EXACT, '"publish a python package"', template(PUBLISH)),
        Question(EXACT, '"security audit"', template(AUDIT)),
        about(EXACT, "+sphinx docs", DOCS, chose("doc_tool", "sphinx")),
        about(EXACT, "documentation -mkdocs", DOCS, negated(chose("doc_tool", "mkdocs"))),
        about(EXACT, "code review -python", REVIEW, negated(chose("primary_language", "python"))),
        Question(
            EXACT,
            "+owasp +failed",
            every(chose("compliance_framework", "owasp_asvs"), failed),
        ),
        Question(EXACT, '"read_the_docs"', chose("publish_target", "read_the_docs")),
        about(
            EXACT, "release prep -prerelease", RELEASE, negated(chose("release_type", "prerelease"))
        ),
        Question(EXACT, "coverage boost +vitest", chose("test_framework", "vitest")),
        Question(
            EXACT, "", chose("strictness", "strict"), filter='form_responses.strictness = "strict"'
        ),
        Question(
            EXACT,
            "sphinx",
            every(chose("doc_tool", "sphinx"), succeeded),
            filter="success = true",
        ),
        Question(
            EXACT,
            "",
            every(template(RELEASE), flag("has_breaking_changes", True)),
            filter='template_id = "release_prep" AND form_responses.has_breaking_changes = true',
        ),
        Question(
            EXACT, "failed", every(template(REVIEW), failed), filter='template_id = "code_review"'
        ),
        Question(EXACT, '"inline_comments"', chose("review_output", "inline_comments")),
        Question(EXACT, "fastcsv", mentions("fastcsv")),
        Question(
            EXACT, "glimmer -documentation", every(mentions("glimmer"), negated(template(DOCS)))
        ),
        Question(EXACT, '"acme/pollen"', mentions("acme/pollen")),
        Question(EXACT, "", cost(lambda c: c > 0.3), filter="total_cost_usd > 0.3"),
        Question(EXACT, "", any_tier(PREMIUM), filter='agents.tier = "premium"'),
        Question(
            EXACT,
            "mypy",
            every(template(PUBLISH), chose("quality_checks", "mypy")),
            filter='template_id = "python_package_publish"',
        ),
    ]


def run_questions() -> list[Question]:
    return [*_tiers(), *_sensitive(), *_plain(), *_exact()]
