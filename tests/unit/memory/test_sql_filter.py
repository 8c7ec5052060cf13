"""The SQL translation of filters means what the Python matcher means.

"One query language, one meaning" rests on this: the memory service (SQL), and any caller that
matches in Python, must agree on every filter and every pattern.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.search.filter import (
    And,
    FilterError,
    Node,
    Not,
    Or,
    Restriction,
    Star,
    check_filter,
    compile_filter,
    matches,
)
from memory_service.search.schema import PATTERN_SCHEMA, pattern_record, record_json
from memory_service.search.sql_filter import FilterCompiler, record_facts, register_functions

SCALARS = ("template_id", "success", "total_cost_usd", "agent_count", "type", "classification")
# Over JSON only, and with the typed scalar columns the search index keeps.
COMPILERS = {
    "json": FilterCompiler(PATTERN_SCHEMA, "record", {"create_time": "create_time_us"}),
    "columns": FilterCompiler(
        PATTERN_SCHEMA,
        "record",
        {"create_time": "create_time_us"},
        {name: name for name in SCALARS},
    ),
    "facts": FilterCompiler(
        PATTERN_SCHEMA,
        "record",
        {"create_time": "create_time_us"},
        {name: name for name in SCALARS},
        facts=("facts", "n"),
    ),
}
COMPILER = COMPILERS["json"]

words = st.sampled_from(["demo", "Demo", "mypy", "ruff", "premium", "cheap", "x", "", "é", "ÉTÉ"])
form_values = st.one_of(
    words.map(lambda w: common_pb2.FormValue(string_value=w)),
    st.sampled_from([0.0, 1.0, 80.0, 85.5, -3.0]).map(
        lambda n: common_pb2.FormValue(number_value=n)
    ),
    st.booleans().map(lambda b: common_pb2.FormValue(bool_value=b)),
    st.lists(words, max_size=3).map(
        lambda ws: common_pb2.FormValue(string_list_value=common_pb2.StringList(values=ws))
    ),
    st.just(common_pb2.FormValue()),
)


@st.composite
def patterns(draw: st.DrawFn) -> memory_pb2.Pattern:
    pattern = memory_pb2.Pattern(
        id=draw(st.sampled_from(["a", "b", "c"])),
        type=memory_pb2.PatternType.ValueType(draw(st.sampled_from([1, 2, 3]))),
        classification=common_pb2.Classification.ValueType(draw(st.sampled_from([0, 1, 2, 3]))),
        template_id=draw(st.sampled_from(["python_package_publish", "code_review", ""])),
        success=draw(st.booleans()),
        total_cost_usd=draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),
        tags=draw(st.lists(words, max_size=3)),
        content=draw(words),
        runner=draw(st.sampled_from(["simulated", "anthropic"])),
        pinned=draw(st.booleans()),
    )
    for role, tier, ok, first, strategy, attempts in draw(
        st.lists(
            st.tuples(
                st.sampled_from(["test_runner", "linter"]),
                st.sampled_from([0, 1, 2, 3]),
                st.booleans(),
                st.sampled_from([0, 1, 2, 3]),  # 0: a writer that did not record it.
                st.sampled_from([0, 1, 2, 3, 4, 5]),
                st.integers(0, 3),
            ),
            max_size=3,
        )
    ):
        pattern.agents.add(
            role=role,
            tier=tier,
            success=ok,
            cost_usd=0.1 * tier,
            attempt_count=attempts,
            first_tier=first,
            tier_strategy=strategy,
        )
    for key in draw(st.lists(st.sampled_from(["coverage", "checks", "name", "flag"]), max_size=4)):
        pattern.form_responses[key].CopyFrom(draw(form_values))
    for tier_name in draw(st.lists(st.sampled_from(["cheap", "capable", "premium"]), max_size=3)):
        pattern.tier_distribution[tier_name] = draw(st.integers(0, 3))
    pattern.create_time.FromDatetime(
        draw(st.sampled_from([datetime(2026, 1, d, tzinfo=UTC) for d in (1, 15, 31)]))
    )
    return pattern


PATHS = [
    ("template_id",),
    ("success",),
    ("total_cost_usd",),
    ("agent_count",),
    ("type",),
    ("classification",),
    ("create_time",),
    ("agents", "role"),
    ("agents", "tier"),
    ("agents", "success"),
    ("agents", "cost_usd"),
    ("agents", "attempt_count"),
    ("agents", "tier_strategy"),
    ("agents", "first_tier"),
    ("agents", "escalated"),
    ("agents", "escalated_to"),
    ("agents", "escalation"),
    ("tier_distribution", "premium"),
    ("tags",),
    ("content",),
    ("runner",),
    ("pinned",),
    ("form_responses",),
    ("form_responses", "coverage"),
    ("form_responses", "checks"),
    ("form_responses", "flag"),
    ("form_responses", "name"),
    ("form_responses", "missing"),
]
LITERALS: st.SearchStrategy[Any] = st.one_of(
    words,
    st.sampled_from(
        [
            *("PREMIUM", "cheap", "EXECUTION", "coverage", "checks", "2026-01-15T00:00:00Z"),
            *("progressive", "LEARNED", "cheap_to_premium", "CAPABLE_TO_PREMIUM", "unspecified"),
        ]
    ),
    st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0, 80.0, 85.5, -3.0]),
    st.booleans(),
    st.just(Star()),
)


@st.composite
def restrictions(draw: st.DrawFn) -> Restriction:
    value = draw(LITERALS)
    op = (
        ":"
        if isinstance(value, Star)
        else draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", ":"]))
    )
    return Restriction(draw(st.sampled_from(PATHS)), op, value)


trees: st.SearchStrategy[Node] = st.recursive(
    restrictions(),
    lambda children: st.one_of(
        children.map(Not),
        st.lists(children, min_size=2, max_size=3).map(lambda c: And(tuple(c))),
        st.lists(children, min_size=2, max_size=3).map(lambda c: Or(tuple(c))),
    ),
    max_leaves=5,
)


def database(rows: list[memory_pb2.Pattern]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    register_functions(db)
    db.execute(
        f"CREATE TABLE docs (n INTEGER, record TEXT, create_time_us INTEGER, {', '.join(SCALARS)})"
    )
    db.execute("CREATE TABLE facts (rowid INTEGER, path TEXT, t TEXT, v)")
    for index, pattern in enumerate(rows):
        record = pattern_record(pattern)
        db.executemany(
            "INSERT INTO facts VALUES (?, ?, ?, ?)",
            [(index, *fact) for fact in record_facts(record)],
        )
        scalars = [int(v) if isinstance(v, bool) else v for v in (record[k] for k in SCALARS)]
        db.execute(
            f"INSERT INTO docs VALUES (?, ?, ?, {', '.join('?' * len(SCALARS))})",
            (index, record_json(record), pattern.create_time.ToMicroseconds(), *scalars),
        )
    return db


@given(st.lists(patterns(), min_size=1, max_size=6), trees)
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_sql_and_python_agree(rows: list[memory_pb2.Pattern], tree: Node) -> None:
    try:
        check_filter(tree, PATTERN_SCHEMA)
    except FilterError:
        return
    db = database(rows)
    expected = {
        index for index, p in enumerate(rows) if matches(tree, pattern_record(p), PATTERN_SCHEMA)
    }
    for name, compiler in COMPILERS.items():
        assert sql_selects(db, compiler, tree) == expected, name


def sql_selects(db: sqlite3.Connection, compiler: FilterCompiler, tree: Node | None) -> set[int]:
    """The rows (their index in `database`) the compiled filter selects."""
    compiled = compiler.compile(tree)
    sql = f"SELECT n FROM docs WHERE {compiled.sql}"
    return {n for (n,) in db.execute(sql, compiled.params)}


def test_examples_from_the_issue() -> None:
    pattern = memory_pb2.Pattern(id="a", template_id="python_package_publish", success=True)
    pattern.agents.add(role="publisher", tier=common_pb2.TIER_PREMIUM, success=True)
    pattern.form_responses["test_coverage_required"].number_value = 85
    db = database([pattern])
    for text, expected in [
        ('agents.tier = "premium"', True),
        ('agents.tier = "capable"', False),
        ("form_responses.test_coverage_required >= 80", True),
        ("form_responses.test_coverage_required > 90", False),
        ("success = true AND NOT agents.success = false", True),
    ]:
        compiled = COMPILER.compile(compile_filter(text, PATTERN_SCHEMA))
        rows = db.execute(f"SELECT n FROM docs WHERE {compiled.sql}", compiled.params).fetchall()
        assert bool(rows) is expected, text
