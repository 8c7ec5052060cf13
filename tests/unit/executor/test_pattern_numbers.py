"""Numbers in a pattern must mean something (issue 10, finding 10).

NaN or an infinity anywhere (metadata included), and a negative cost, count
or attempt count, are INVALID_ARGUMENT naming the field; nothing is stored.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attune.memory.v1 import memory_pb2
from executor_service.runs.forms import resolve_answers, to_form_value
from executor_service.templates.catalog import load_builtin
from memory_service.patterns import store_violations

NONSENSE = [math.nan, math.inf, -math.inf]


def request(pattern: memory_pb2.Pattern) -> memory_pb2.StorePatternRequest:
    return memory_pb2.StorePatternRequest(namespace="team-a", pattern=pattern)


def valid() -> memory_pb2.Pattern:
    pattern = memory_pb2.Pattern(id="p-1", type=memory_pb2.PATTERN_TYPE_EXECUTION, content="x")
    pattern.total_cost_usd = 0.5
    pattern.agents.add(role="test_runner", cost_usd=0.25, attempt_count=2)
    pattern.agents.add(role="skipped", cost_usd=0.0, attempt_count=0)
    pattern.tier_distribution["premium"] = 1
    pattern.form_responses["coverage"].CopyFrom(to_form_value(-3.5))  # Answers may be negative.
    pattern.metadata.update({"score": -1.5, "nested": {"list": [1, 2.5, {"n": 0}]}})
    return pattern


def fields(pattern: memory_pb2.Pattern) -> dict[str, str]:
    return dict(store_violations(request(pattern)))


def test_a_sensible_pattern_has_no_violations() -> None:
    assert fields(valid()) == {}


@pytest.mark.parametrize("value", NONSENSE)
def test_nan_and_infinities_in_metadata_are_refused_wherever_they_nest(value: float) -> None:
    pattern = valid()
    pattern.metadata.fields["top"].number_value = value
    nested = pattern.metadata.fields["nested"].struct_value.fields["list"].list_value
    nested.values[2].struct_value.fields["deep"].number_value = value
    nested.values.add().number_value = value
    assert fields(pattern) == {
        "pattern.metadata.top": "must be a finite number",
        "pattern.metadata.nested.list[2].deep": "must be a finite number",
        "pattern.metadata.nested.list[3]": "must be a finite number",
    }


def test_negative_attempts_costs_and_counts_are_refused() -> None:
    pattern = valid()
    pattern.agents[0].attempt_count = -1
    pattern.agents[1].cost_usd = -0.01
    pattern.total_cost_usd = -2.0
    pattern.tier_distribution["cheap"] = -3
    assert fields(pattern) == {
        "pattern.agents[0].attempt_count": "must not be negative",
        "pattern.agents[1].cost_usd": "must not be negative",
        "pattern.total_cost_usd": "must not be negative",
        "pattern.tier_distribution.cheap": "must not be negative",
    }


@pytest.mark.parametrize("value", NONSENSE)
def test_nan_and_infinities_in_costs_are_refused(value: float) -> None:
    pattern = valid()
    pattern.total_cost_usd = value
    pattern.agents[0].cost_usd = value
    assert fields(pattern) == {
        "pattern.total_cost_usd": "must be a finite number",
        "pattern.agents[0].cost_usd": "must be a finite number",
    }


json_numbers = st.floats(allow_nan=True, allow_infinity=True)
metadata = st.recursive(
    st.none() | st.booleans() | st.text(max_size=4) | json_numbers,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)


def numbers_in(value: object) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, list):
        return [n for item in value for n in numbers_in(item)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in numbers_in(item)]
    return []


@settings(max_examples=300, deadline=None)
@given(content=st.dictionaries(st.text(max_size=3), metadata, max_size=4))
def test_metadata_is_refused_exactly_when_it_holds_a_non_finite_number(
    content: dict[str, object],
) -> None:
    pattern = valid()
    pattern.ClearField("metadata")
    pattern.metadata.update(content)  # type: ignore[arg-type]  # JSON values, as drawn
    found = store_violations(request(pattern))  # A list: keys may render alike ("a.b").
    bad = [n for n in numbers_in(content) if not math.isfinite(n)]
    assert len(found) == len(bad)
    assert all(name.startswith("pattern.metadata") for name, _ in found)


@settings(max_examples=200, deadline=None)
@given(
    attempts=st.integers(-(2**31), 2**31 - 1),
    cost=st.floats(),
    count=st.integers(-(2**31), 2**31 - 1),
)
def test_amounts_are_accepted_exactly_when_finite_and_not_negative(
    attempts: int, cost: float, count: int
) -> None:
    pattern = valid()
    pattern.agents[0].attempt_count = attempts
    pattern.agents[0].cost_usd = cost
    pattern.tier_distribution["capable"] = count
    found = fields(pattern)
    assert ("pattern.agents[0].attempt_count" in found) is (attempts < 0)
    assert ("pattern.agents[0].cost_usd" in found) is not (math.isfinite(cost) and cost >= 0)
    assert ("pattern.tier_distribution.capable" in found) is (count < 0)


@pytest.mark.parametrize("value", NONSENSE)
def test_a_number_question_without_bounds_refuses_nan_and_infinities(value: float) -> None:
    template = load_builtin().get("python_package_publish")
    assert template is not None
    unbounded = template.model_copy(
        update={
            "questions": [
                q.model_copy(update={"min": None, "max": None}) for q in template.questions
            ]
        }
    )
    answers = {
        "package_name": to_form_value("demo"),
        "test_coverage_required": to_form_value(value),
    }
    _, violations = resolve_answers(unbounded, answers)
    assert dict(violations) == {
        "test_coverage_required": "must be a finite number, not NaN or infinity"
    }
