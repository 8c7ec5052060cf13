"""Timestamp filters mean the exact microsecond, before 1970 too (issue 10, finding 10).

The SQL translation turned "1969-12-31T23:59:59.5Z" into +500000 µs (the
conversion truncated toward zero) while the pattern's stored create time is
-500000 µs, so the filter matched nothing while the Python matcher matched.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune.memory.v1 import memory_pb2
from memory_service.search.filter import compile_filter, matches
from memory_service.search.index import PageQuery, SearchIndex
from memory_service.search.schema import PATTERN_SCHEMA, pattern_record, record_json
from tests.unit.memory.test_sql_filter import COMPILERS, database

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COMPARISONS: dict[str, Callable[[datetime, datetime], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# Near the epoch (where truncation and floor differ), and far on either side.
moments = st.one_of(
    st.integers(-3_000_000, 3_000_000).map(lambda us: EPOCH + timedelta(microseconds=us)),
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC),
    ),
)
offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch, by exact integer arithmetic."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def literal(moment: datetime, zone: timezone) -> str:
    """An RFC 3339 literal for the moment, written in the given zone."""
    text = moment.astimezone(zone).isoformat()
    return text.replace("+00:00", "Z")


def pattern_at(pattern_id: str, moment: datetime) -> memory_pb2.Pattern:
    pattern = memory_pb2.Pattern(id=pattern_id, type=memory_pb2.PATTERN_TYPE_INSIGHT, content="x")
    pattern.create_time.FromMicroseconds(micros(moment))
    return pattern


def test_a_fraction_before_1970_matches_its_own_pattern() -> None:
    moment = EPOCH - timedelta(milliseconds=500)
    assert micros(moment) == -500_000
    index = SearchIndex(sqlite3.connect(":memory:"))
    index.put("ns", pattern_at("half", moment), "d1")
    index.put("ns", pattern_at("epoch", EPOCH), "d2")
    for text, expected in [
        ('create_time = "1969-12-31T23:59:59.5Z"', ["half"]),
        ('create_time < "1970-01-01T00:00:00Z"', ["half"]),
        ('create_time >= "1969-12-31T23:59:59.500001Z"', ["epoch"]),
        ('create_time > "1969-12-31T23:59:59Z"', ["epoch", "half"]),
    ]:
        patterns, _ = index.page(
            PageQuery("ns", compile_filter(text, PATTERN_SCHEMA), [("id", False)], 10, 0)
        )
        assert [p.id for p in patterns] == expected, text


def test_the_stored_record_holds_the_exact_microsecond() -> None:
    record = pattern_record(pattern_at("p", EPOCH - timedelta(microseconds=1)))
    assert '"create_time":-1' in record_json(record)


@given(
    stored=st.lists(moments, min_size=1, max_size=4),
    bound=moments,
    zone=offsets,
    op=st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_sql_and_python_agree_on_any_timestamp(
    stored: list[datetime], bound: datetime, zone: timezone, op: str
) -> None:
    rows = [pattern_at(f"p{n}", moment) for n, moment in enumerate(stored)]
    condition = compile_filter(f'create_time {op} "{literal(bound, zone)}"', PATTERN_SCHEMA)
    assert condition is not None
    expected = {
        n for n, p in enumerate(rows) if matches(condition, pattern_record(p), PATTERN_SCHEMA)
    }
    # Python's own answer is the exact comparison of the moments.
    compare = COMPARISONS[op]
    assert expected == {n for n, moment in enumerate(stored) if compare(moment, bound)}
    db = database(rows)
    for name, compiler in COMPILERS.items():
        compiled = compiler.compile(condition)
        sql = f"SELECT n FROM docs WHERE {compiled.sql}"  # noqa: S608 (compiled, bound params)
        found = {n for (n,) in db.execute(sql, compiled.params)}
        assert found == expected, name
    index = SearchIndex(sqlite3.connect(":memory:"))
    for row in rows:
        index.put("ns", row, row.id)
    patterns, total = index.page(PageQuery("ns", condition, [("id", False)], 10, 0))
    assert {int(p.id[1:]) for p in patterns} == expected
    assert total == len(expected)
