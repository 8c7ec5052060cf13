"""One query language, one meaning: the memory service and the executor's fallback agree.

Over the same runs (several templates, many answer combinations, PII in free
text answers, SENSITIVE runs), every labelled query returns the same run ids
in the same order whether the memory service answers or the executor's
local index over its run files does, with the same applied filter; each
label says whether the query should find runs at all, so agreeing on
"nothing" by accident cannot pass.

The queries cover free text, phrases, prefixes, typos, every filter operator
(= != < <= > >= and `:` for lists, maps, text and presence; AND, OR, NOT,
`-`, parentheses), nested fields (agents.*, form_responses.*,
tier_distribution.*), query understanding (success words, cost bounds,
agent counts, tiers, relative time, template names, numeric form answers)
and text the memory service scrubbed of PII, which must match on neither
side.
"""

from __future__ import annotations

import re

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.runs.forms import to_form_value
from executor_service.templates.models import Answer
from tests.support.helpers import run_to_end
from tests.support.stack import Stack

RUNS: list[tuple[str, dict[str, Answer]]] = [
    ("python_package_publish", {"package_name": "alpha", "test_coverage_required": 90}),
    (
        "python_package_publish",
        {"package_name": "beta", "quality_checks": ["bandit"], "test_coverage_required": 85},
    ),
    ("python_package_publish", {"package_name": "gamma", "publish_target": "none"}),
    ("python_package_publish", {"package_name": "delta", "has_tests": False}),
    (
        "python_package_publish",
        {"package_name": "epsilon", "test_coverage_required": 95, "version_bump": "major"},
    ),
    (
        "python_package_publish",
        {
            "package_name": "zeta",
            "quality_checks": ["mypy", "dependency_audit", "docs_build"],
            "test_coverage_required": 88,
        },
    ),
    ("python_package_publish", {"package_name": "eta", "test_coverage_required": 60}),
    # A sensitive word in a free-text answer: SENSITIVE on both sides.
    ("python_package_publish", {"package_name": "payroll salary exporter"}),
    ("code_review", {}),
    ("code_review", {"primary_language": "rust", "strictness": "strict"}),
    ("code_review", {"primary_language": "go", "review_focus": ["security", "performance"]}),
    ("code_review", {"touches_public_api": True, "max_comments": 5}),
    # PII in a free-text answer: scrubbed before either side indexes it.
    (
        "code_review",
        {"pull_request_url": "https://github.com/acme/web/pull/7 ask alice.smith@example.com"},
    ),
    ("code_review", {"review_output": "github_review", "run_static_analysis": False}),
    ("documentation", {}),
    ("documentation", {"doc_tool": "sphinx", "docstring_coverage_target": 95}),
    ("documentation", {"doc_types": ["tutorial", "how_to_guides"], "audience": "end_users"}),
    ("documentation", {"project_name": "hotline docs, call 650-253-0000"}),
    ("documentation", {"doc_tool": "docusaurus", "publish_target": "github_pages"}),
    ("security_audit", {}),
    ("security_audit", {"audit_scope": ["dependencies"], "compliance_framework": "soc2"}),
    ("security_audit", {"audit_scope": ["containers", "ci_pipeline"], "fail_on_cvss": 9}),
    ("security_audit", {"internet_facing": False, "severity_threshold": "high"}),
    ("release_prep", {"release_version": "2.0.0", "release_type": "major"}),
    ("release_prep", {"release_version": "1.4.0", "has_breaking_changes": True}),
    ("release_prep", {"release_version": "1.3.1", "release_type": "patch"}),
    (
        "release_prep",
        {"release_version": "3.0.0rc1", "release_type": "prerelease", "ci_green_runs_required": 7},
    ),
    ("test_coverage_boost", {"target_path": "src/api", "test_coverage_target": 85}),
    ("test_coverage_boost", {"target_path": "src/core", "test_coverage_target": 95}),
    (
        "test_coverage_boost",
        {"target_path": "lib", "test_coverage_target": 70, "test_framework": "unittest"},
    ),
    (
        "test_coverage_boost",
        {"target_path": "web", "test_coverage_target": 60, "test_kinds": ["unit", "mutation"]},
    ),
]

# (query, filter, whether it should find runs).
QUERIES: list[tuple[str, str, bool]] = [
    # Free text, phrases, prefixes, typos.
    ("python package publish", "", True),
    ("publish", "success = true", True),
    ('"publish a python package"', "", True),
    ('"package python publish"', "", False),
    ("publ*", "", True),
    ("doc* sphinx", "", True),
    ("packge", "", True),
    ("documentaton", "", True),
    ("security audit", "", True),  # Only SENSITIVE runs have it: free text on both sides.
    ("salary", "", True),
    # Every operator, nested fields.
    ("", 'agents.tier = "premium"', True),
    ("", 'agents.tier != "cheap" AND template_id = "code_review"', True),
    ("", "form_responses.test_coverage_required >= 85", True),
    ("", "form_responses.test_coverage_target < 80", True),
    ("", "form_responses.docstring_coverage_target > 90 OR form_responses.max_comments <= 5", True),
    ("", 'form_responses.quality_checks:"bandit"', True),
    (
        "",
        'form_responses.primary_language = "rust" OR form_responses.primary_language = "go"',
        True,
    ),
    ("", "form_responses.has_tests = false", True),
    ("", "form_responses.ci_green_runs_required:*", True),
    ("", '-form_responses.release_version:"1." AND template_id = "release_prep"', True),
    ("", 'NOT template_id = "code_review" AND agents.success = false', True),
    ("", "(agent_count <= 3 OR total_cost_usd > 0.05) AND agents.attempt_count >= 1", True),
    ("", "tier_distribution.cheap >= 1 AND agents.cost_usd > 0", True),
    ("", 'agents.role:"package_builder" AND tags:"release"', True),
    ("", 'classification = "SENSITIVE"', True),
    ("", 'classification = "INTERNAL" AND type = "EXECUTION" AND runner = "simulated"', True),
    ("", 'create_time > "2020-01-01T00:00:00Z" AND template_id = "documentation"', True),
    ("review", "total_cost_usd < 1", True),
    ("", 'agents.escalated = true AND agents.tier_strategy = "progressive"', True),
    ("", 'agents.escalation = "capable_to_premium" OR agents.first_tier = "premium"', True),
    # Query understanding.
    ("failed runs", "", True),
    ("successful workflows with test coverage > 80%", "", True),
    ("code review runs", "", True),
    ("release prep cost under $5", "", True),
    ("workflows with more than 4 agents", "", True),
    ("premium agents", "", True),
    ("documentation workflows from last week", "", True),
    ("runs before 2020-01-01", "", False),
    ("docstring coverage at least 90", "", True),
    ("runs that escalated to capable", "", True),
    ("only cheap agents that never escalated", "", True),
    ("progressive escalation without premium agents", "", True),
    ("capable first strategy older than a week", "", False),
    # PII: scrubbed by the memory service, so by the fallback too.
    ("alice", "", False),
    ("", 'form_responses.pull_request_url:"alice"', False),
    ("650", "", False),
    ("hotline", "", True),
]

PAGE_SIZES = (50, 5)  # Everything; and a page cut through the merged order.
# Relative time is planned to the second on each side, a call apart: for
# these queries the applied filters' times may differ by that second.
RELATIVE_TIME = {"documentation workflows from last week"}
_TIMESTAMP = re.compile(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"')


async def required_answers(stack: Stack, template_id: str) -> dict[str, common_pb2.FormValue]:
    template = await stack.executor_stub().GetTemplate(
        executor_pb2.GetTemplateRequest(template_id=template_id), timeout=5
    )
    answers = {}
    for question in template.template.questions:
        if question.required and not question.HasField("default_value"):
            if question.type == executor_pb2.QUESTION_TYPE_MULTI_SELECT:
                answers[question.id] = to_form_value([question.options[0]])
            elif question.type == executor_pb2.QUESTION_TYPE_SINGLE_SELECT:
                answers[question.id] = to_form_value(question.options[0])
            elif question.type == executor_pb2.QUESTION_TYPE_NUMBER:
                answers[question.id] = to_form_value(
                    question.min if question.HasField("min") else 1
                )
            elif question.type == executor_pb2.QUESTION_TYPE_BOOLEAN:
                answers[question.id] = to_form_value(True)
            else:
                answers[question.id] = to_form_value("cross-check")
    return answers


async def test_memory_and_local_files_return_the_same_runs(stack: Stack) -> None:
    stub = stack.executor_stub()
    for seed, (template_id, given) in enumerate(RUNS):
        answers = await required_answers(stack, template_id)
        answers.update({key: to_form_value(value) for key, value in given.items()})
        request = executor_pb2.RunWorkflowRequest(
            template_id=template_id, answers=answers, seed=seed
        )
        events = await run_to_end(stub, request)
        assert events[-1].run_finished.run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_STORED
    disagreements: list[tuple[object, ...]] = []
    for query, condition, finds in QUERIES:
        for size in PAGE_SIZES:
            results = {}
            for mode in (
                executor_pb2.SEARCH_RUNS_MODE_MEMORY,
                executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES,
            ):
                response = await stub.SearchRuns(
                    executor_pb2.SearchRunsRequest(
                        query=query, filter=condition, mode=mode, page_size=size
                    ),
                    timeout=5,
                )
                applied = response.applied_filter
                if query in RELATIVE_TIME:
                    applied = _TIMESTAMP.sub('"<now minus a week>"', applied)
                results[mode] = ([hit.run_id for hit in response.hits], applied)
            memory, local = results.values()
            if memory != local:
                disagreements.append((query, condition, size, memory, local))
            if size == PAGE_SIZES[0] and bool(memory[0]) != finds:
                disagreements.append(
                    (query, condition, size, "expected hits" if finds else "expected none", memory)
                )
    assert not disagreements, "\n".join(map(repr, disagreements))
