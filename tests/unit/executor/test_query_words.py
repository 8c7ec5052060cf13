"""The query words an index knows are those of its live documents, whatever
was put, replaced, deleted or expired before (issue 10, finding 13)."""

from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from attune.memory.v1 import memory_pb2
from executor_service.runs.forms import to_form_value
from memory_service.search.index import SearchIndex

NS = "team-a"
NOW = 1_767_225_600_000_000

# (op, id, template, numeric question ids, expired)
Op = tuple[str, str, str, tuple[str, ...], bool]
ops = st.tuples(
    st.sampled_from(["put", "put", "delete"]),
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(["", "payroll_export", "docs_site_build"]),
    st.lists(st.sampled_from(["headcount", "coverage"]), unique=True).map(tuple),
    st.booleans(),
)


def pattern(
    pattern_id: str, template: str, numeric: tuple[str, ...], expired: bool
) -> memory_pb2.Pattern:
    made = memory_pb2.Pattern(id=pattern_id, template_id=template, content="x")
    for key in numeric:
        made.form_responses[key].CopyFrom(to_form_value(1.0))
    made.form_responses["label"].CopyFrom(to_form_value("text, not a number"))
    if expired:
        made.expire_time.FromMicroseconds(NOW - 1)
    return made


@given(st.lists(ops, max_size=12), st.integers(min_value=0, max_value=12))
@settings(max_examples=200, deadline=None)
def test_query_words_are_those_of_the_live_documents(steps: list[Op], warm_at: int) -> None:
    connection = sqlite3.connect(":memory:")
    try:
        index = SearchIndex(connection, lambda: NOW)
        live: dict[str, memory_pb2.Pattern] = {}
        for n, (op, pattern_id, template, numeric, expired) in enumerate(steps):
            if n == warm_at:
                index.query_vocabulary(NS)  # Counted from here on, not loaded at the end.
            if op == "delete":
                index.delete(NS, pattern_id)
                live.pop(pattern_id, None)
                continue
            made = pattern(pattern_id, template, numeric, expired)
            index.put(NS, made, "d")
            live[pattern_id] = made
            if expired:
                live.pop(pattern_id)
        templates = sorted({p.template_id for p in live.values() if p.template_id})
        numeric_ids = sorted({key for p in live.values() for key in p.form_responses} - {"label"})
        assert index.query_vocabulary(NS) == (templates, numeric_ids)
    finally:
        connection.close()
