"""Invariant 3: the memory service and the executor's fallback agree.

Over the same runs, every labelled query (free text, filters, understood
phrasings, typos) returns the same run ids in the same order whether the
memory service answers or the executor's run files do.
"""

from __future__ import annotations

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.forms import to_form_value
from executor_service.templates.models import Answer
from tests.conftest import Stack
from tests.helpers import run_to_end

RUNS: list[tuple[str, dict[str, Answer]]] = [
    ("python_package_publish", {"package_name": "alpha", "test_coverage_required": 90}),
    ("python_package_publish", {"package_name": "beta", "quality_checks": ["bandit"]}),
    ("python_package_publish", {"package_name": "gamma", "publish_target": "none"}),
    ("code_review", {}),
    ("documentation", {}),
    ("security_audit", {}),
]

QUERIES: list[tuple[str, str]] = [
    ("python package publish", ""),
    ("publish", "success = true"),
    ("publ*", ""),
    ("packge", ""),  # A typo, corrected the same way on both sides.
    ("", 'agents.tier = "premium"'),
    ("", "form_responses.test_coverage_required >= 85"),
    ("failed runs", ""),
    ("successful workflows with test coverage > 80%", ""),
    ("review", "total_cost_usd < 1"),
]


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
    answered = 0
    for query, condition in QUERIES:
        results = {}
        for mode in (
            executor_pb2.SEARCH_RUNS_MODE_MEMORY,
            executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES,
        ):
            response = await stub.SearchRuns(
                executor_pb2.SearchRunsRequest(
                    query=query, filter=condition, mode=mode, page_size=50
                ),
                timeout=5,
            )
            results[mode] = ([hit.run_id for hit in response.hits], response.applied_filter)
        memory, local = results.values()
        assert memory == local, (query, condition)
        answered += bool(memory[0])
    assert answered >= len(QUERIES) - 1, f"only {answered} labelled queries found anything"
