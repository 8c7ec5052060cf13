"""Relevance over a seeded corpus: labelled queries and their expected results.

The corpus is 300 execution patterns the executor's own pipeline made,
plus four written insights (the needles). Free-text queries must put their
needle first, typos included; understood phrasings must apply the expected
filter and return exactly what the Python matcher selects from the corpus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from attune.memory.v1 import memory_pb2
from memory_service.search.filter import compile_filter, matches
from memory_service.search.schema import PATTERN_SCHEMA, pattern_record
from tests.corpus.generate import corpus
from tests.support.stack import Stack, running_stack

NAMESPACE = "relevance"
CORPUS = corpus(300)

NEEDLE_QUERIES = [
    ("flaky integration tests", "needle-flaky"),
    ("flaky integraton tests", "needle-flaky"),  # A typo still finds it.
    ("wheel manylinux", "needle-wheel"),
    ("manylinx wheel", "needle-wheel"),
    ("leaked tokens", "needle-secrets"),  # Stemming: leaked/leak, tokens/token.
    # Quoted, an option value ("sphinx" of doc_tool) is a word, not a filter on runs.
    ('"sphinx" docs warnings', "needle-docs"),
    ('"duplicate labels"', "needle-docs"),
    ("autosection*", "needle-docs"),
]

UNDERSTOOD_QUERIES = [
    ("failed code review runs", 'success = false AND template_id = "code_review"'),
    (
        "successful workflows with test coverage > 80%",
        "success = true AND (form_responses.test_coverage_required > 80 "
        "OR form_responses.test_coverage_target > 80)",
    ),
    (
        "documentation runs with sphinx",
        'template_id = "documentation" AND form_responses.doc_tool = "sphinx"',
    ),
    ("runs with premium agents", 'agents.tier = "premium"'),
    ("security audit runs costing more than $0.20", None),
]


@pytest.fixture
async def loaded(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as stack:
        stub = stack.memory_stub()
        for start in range(0, len(CORPUS), 100):
            batch = memory_pb2.BatchStorePatternsRequest(
                requests=[
                    memory_pb2.StorePatternRequest(namespace=NAMESPACE, pattern=pattern)
                    for pattern in CORPUS[start : start + 100]
                ]
            )
            response = await stub.BatchStorePatterns(batch, timeout=30)
            assert all(result.code == 0 for result in response.results)
        yield stack


async def test_needles_rank_first(loaded: Stack) -> None:
    stub = loaded.memory_stub()
    misses = []
    for query, expected in NEEDLE_QUERIES:
        response = await stub.SearchPatterns(
            memory_pb2.SearchPatternsRequest(namespace=NAMESPACE, query=query, explain=True),
            timeout=5,
        )
        top = [result.pattern.id for result in response.results[:1]]
        if top != [expected]:
            misses.append((query, expected, [r.pattern.id for r in response.results[:3]]))
    assert misses == []


async def test_typos_are_explained(loaded: Stack) -> None:
    response = await loaded.memory_stub().SearchPatterns(
        memory_pb2.SearchPatternsRequest(
            namespace=NAMESPACE, query="flaky integraton tests", explain=True
        ),
        timeout=5,
    )
    explanation = response.results[0].explanation
    assert "integraton->integration" in explanation.fuzzy_expansions
    assert "integration" in explanation.matched_terms
    assert explanation.keyword_score > 0


async def test_understood_phrasings_apply_their_filter_and_match_the_oracle(
    loaded: Stack,
) -> None:
    stub = loaded.memory_stub()
    for query, expected_filter in UNDERSTOOD_QUERIES:
        response = await stub.SearchPatterns(
            memory_pb2.SearchPatternsRequest(namespace=NAMESPACE, query=query, page_size=100),
            timeout=5,
        )
        if expected_filter is not None:
            assert response.applied_filter == expected_filter, query
        assert response.applied_filter, query
        condition = compile_filter(response.applied_filter, PATTERN_SCHEMA)
        oracle = {p.id for p in CORPUS if matches(condition, pattern_record(p), PATTERN_SCHEMA)}
        if response.applied_query:
            # Free text left over narrows further; every hit must still pass the filter.
            assert {r.pattern.id for r in response.results} <= oracle, query
        else:
            assert response.total_size == len(oracle), query
            assert oracle, f"the corpus has no match for {query!r}; the test proves nothing"


async def test_understanding_can_be_turned_off(loaded: Stack) -> None:
    response = await loaded.memory_stub().SearchPatterns(
        memory_pb2.SearchPatternsRequest(
            namespace=NAMESPACE, query="failed code review", disable_query_understanding=True
        ),
        timeout=5,
    )
    assert response.applied_filter == ""
    assert response.applied_query == "failed code review"
