"""The AIP-160 filter subset: parsing, printing, checking and matching."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_service.search.filter import (
    And,
    FieldSpec,
    FieldType,
    FilterError,
    Node,
    Not,
    Or,
    Restriction,
    Schema,
    Star,
    compile_filter,
    matches,
    parse_filter,
    to_text,
)

SCHEMA = Schema(
    {
        "template_id": FieldSpec(FieldType.STRING),
        "success": FieldSpec(FieldType.BOOL),
        "total_cost_usd": FieldSpec(FieldType.NUMBER),
        "create_time": FieldSpec(FieldType.TIMESTAMP),
        "status": FieldSpec(FieldType.ENUM, enum_values=("SUCCEEDED", "FAILED")),
        "tags": FieldSpec(FieldType.STRING, repeated=True),
        "agents.tier": FieldSpec(FieldType.STRING, repeated=True),
        "agents.cost_usd": FieldSpec(FieldType.NUMBER, repeated=True),
        "form_responses.*": FieldSpec(FieldType.ANY),
    }
)

RECORD: dict[str, Any] = {
    "template_id": "python_package_publish",
    "success": True,
    "total_cost_usd": 0.42,
    "create_time": datetime(2026, 1, 17, 5, 29, 59, tzinfo=UTC),
    "status": "SUCCEEDED",
    "tags": ["python", "release"],
    "agents": [
        {"tier": "cheap", "cost_usd": 0.01},
        {"tier": "premium", "cost_usd": 0.3},
    ],
    "form_responses": {
        "test_coverage_required": 85.0,
        "quality_checks": ["mypy", "ruff"],
        "has_tests": True,
        "package_name": "demo",
    },
}


def holds(text: str) -> bool:
    return matches(compile_filter(text, SCHEMA), RECORD, SCHEMA)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('template_id = "python_package_publish"', True),
        ('template_id != "python_package_publish"', False),
        ("success = true", True),
        ("success = false", False),
        ("total_cost_usd < 0.5", True),
        ("total_cost_usd >= 0.5", False),
        ('create_time > "2026-01-01T00:00:00Z"', True),
        ('create_time < "2026-01-17T05:29:59Z"', False),
        ("status = succeeded", True),
        ('agents.tier = "premium"', True),
        ('agents.tier = "capable"', False),
        ("agents.cost_usd > 0.2", True),
        ("form_responses.test_coverage_required >= 80", True),
        ("form_responses.test_coverage_required > 90", False),
        ('form_responses.quality_checks:"mypy"', True),
        ('form_responses.quality_checks = "ruff"', True),
        ("form_responses.has_tests = true", True),
        ("form_responses.has_tests = 1", False),
        ('tags:"rel"', True),
        ("form_responses:test_coverage_required", True),
        ("form_responses.missing:*", False),
        ("form_responses.package_name:*", True),
        ("NOT success = true", False),
        ("-success = true", False),
        ('success = true template_id = "x"', False),
        ('success = false OR template_id = "python_package_publish"', True),
        ('total_cost_usd > 1 AND success = true OR agents.tier = "premium"', False),
        ('(total_cost_usd > 1 AND success = true) OR agents.tier = "premium"', True),
    ],
)
def test_semantics(text: str, expected: bool) -> None:
    assert holds(text) is expected


def test_or_binds_tighter_than_and() -> None:
    tree = parse_filter("a = 1 AND b = 2 OR c = 3")
    assert isinstance(tree, And)
    assert isinstance(tree.children[1], Or)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("colour = 1", "unknown field 'colour'"),
        ('total_cost_usd > "cheap"', "is a number"),
        ("success = 3", "true or false"),
        ("success < true", "only = and !="),
        ('create_time > "yesterday"', "RFC 3339"),
        ("status = DONE", "one of"),
        ("template_id = *", "only allowed with ':'"),
        ("template_id = ", "position 14"),
        ("(success = true", "expected ')'"),
        ("success = true AND", "unexpected end"),
        ("a ~ 1", "position 2"),
        ('a = "\\q"', "invalid escape"),
        ("a = 1e999", "out of range"),
    ],
)
def test_errors_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(FilterError) as raised:
        compile_filter(text, SCHEMA)
    assert fragment in str(raised.value)


def test_empty_filter_matches_everything() -> None:
    assert compile_filter("   ", SCHEMA) is None
    assert matches(None, RECORD, SCHEMA)


# --- properties -------------------------------------------------------------------

_KEYWORDS = {"AND", "OR", "NOT", "true", "false"}
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name not in _KEYWORDS
)
literals: st.SearchStrategy[tuple[Any, bool]] = st.one_of(
    st.text(max_size=12).map(lambda text: (text, False)),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda number: (number, False)),
    st.booleans().map(lambda flag: (flag, False)),
    names.map(lambda word: (word, True)),
)


@st.composite
def restrictions(draw: st.DrawFn) -> Restriction:
    path = tuple(draw(st.lists(names, min_size=1, max_size=3)))
    op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", ":"]))
    if op == ":" and draw(st.booleans()):
        return Restriction(path, op, Star())
    value, bare = draw(literals)
    return Restriction(path, op, value, bare)


trees: st.SearchStrategy[Node] = st.recursive(
    restrictions(),
    lambda children: st.one_of(
        children.map(Not),
        st.lists(children, min_size=2, max_size=3).map(lambda c: And(tuple(c))),
        st.lists(children, min_size=2, max_size=3).map(lambda c: Or(tuple(c))),
    ),
    max_leaves=8,
)


def _normal(node: Node) -> Node:
    """Float literals compare by value; -0.0 prints as 0."""
    if isinstance(node, Restriction) and isinstance(node.value, float) and node.value == 0:
        return Restriction(node.path, node.op, 0.0, node.bare)
    if isinstance(node, Not):
        return Not(_normal(node.child))
    if isinstance(node, And):
        return And(tuple(_normal(c) for c in node.children))
    if isinstance(node, Or):
        return Or(tuple(_normal(c) for c in node.children))
    return node


@given(trees)
@settings(max_examples=300)
def test_printing_then_parsing_gives_the_same_tree(tree: Node) -> None:
    assert _normal(parse_filter(to_text(tree)) or tree) == _normal(tree)


@given(st.text(max_size=60))
@settings(max_examples=500)
def test_garbage_only_ever_raises_filter_error(text: str) -> None:
    try:
        tree = compile_filter(text, SCHEMA)
    except FilterError:
        return
    assert matches(tree, RECORD, SCHEMA) in (True, False)


@given(
    st.lists(
        st.sampled_from(["(", ")", "a", "=", "1", "AND", "OR", "NOT", "-", ":", "*", '"x"']),
        max_size=30,
    )
)
@settings(max_examples=500)
def test_token_soup_only_ever_raises_filter_error(tokens: list[str]) -> None:
    with contextlib.suppress(FilterError):
        parse_filter(" ".join(tokens))
