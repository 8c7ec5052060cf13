"""The SQL the search index runs over its tables (their schema is in
index.py): the filter compiler bound to its columns (a search verifies
candidates with it), and the grouping of a count."""

from __future__ import annotations

import math
import sqlite3

from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.search.sql_filter import FilterCompiler

# The docs columns that copy a scalar field of the pattern's record.
SCALARS = (
    "template_id",
    "success",
    "total_cost_usd",
    "total_duration_seconds",
    "agent_count",
    "type",
    "classification",
    "runner",
    "run_id",
    "pinned",
)
COMPILER = FilterCompiler(
    PATTERN_SCHEMA,
    "d.record",
    {"create_time": "d.create_time_us"},
    {name: f"d.{name}" for name in (*SCALARS, "id")} | {"id": "d.doc_id"},
    facts=("doc_facts", "d.rowid"),
)
ORDERABLE = {"create_time": "d.create_time_us", "id": "d.doc_id"}
# Rows a read leaves out once something in the namespace has expired.
LIVE = " AND (d.expire_us = 0 OR d.expire_us > ?)"


def add_missing_columns(connection: sqlite3.Connection) -> None:
    """Adds the docs columns of a file written before they existed:
    expire_us (retention), marks (the text engine's; NULL: made from doc_facts)."""
    columns = {str(row[1]) for row in connection.execute("PRAGMA table_info(docs)")}
    if columns and "expire_us" not in columns:
        connection.execute("ALTER TABLE docs ADD COLUMN expire_us INTEGER NOT NULL DEFAULT 0")
    if columns and "marks" not in columns:
        connection.execute("ALTER TABLE docs ADD COLUMN marks TEXT")


_SUCCESS = "json_extract(d.record, '$.success')"
_COST = "json_extract(d.record, '$.total_cost_usd')"


def totals_sql(filter_sql: str) -> str:
    """(count, successes, total cost) of a namespace's docs `d` passing the filter."""
    return (
        f"SELECT count(*), coalesce(sum({_SUCCESS}), 0), coalesce(sum({_COST}), 0) "
        f"FROM docs d WHERE d.namespace = ? AND {filter_sql}"
    )


def grouped_sql(group_by: str, filter_sql: str) -> str:
    """(key, count, successes, total cost) per value of the group_by field of
    a namespace's docs `d` passing the filter, the largest groups first.

    A list field (agents.tier) groups a pattern under each of its values.
    """
    source, key = _group_source(group_by)
    # DISTINCT (key, pattern) first: a pattern with two premium agents
    # counts, succeeds and costs once in the premium group, not twice.
    return (
        "SELECT k, count(*) AS n, coalesce(sum(s), 0), coalesce(sum(c), 0) FROM ("
        f"SELECT DISTINCT {key} AS k, d.rowid, {_SUCCESS} AS s, {_COST} AS c "
        f"FROM docs d {source} WHERE d.namespace = ? AND {filter_sql}"
        ") GROUP BY k ORDER BY n DESC, k"
    )


def _group_source(group_by: str) -> tuple[str, str]:
    """(extra FROM clause, key expression) for a group_by field path."""
    path = group_by.split(".")
    spec = PATTERN_SCHEMA.lookup(tuple(path))
    if spec is None:
        raise ValueError(f"cannot group by unknown field {group_by!r}")
    quoted = "".join(f'."{segment}"' for segment in path)
    if spec.repeated and len(path) > 1:
        leaf = "".join(f'."{segment}"' for segment in path[1:])
        return (
            f", json_each(d.record, '$.\"{path[0]}\"') AS g",
            f"json_extract(g.value, '${leaf}')",
        )
    if spec.repeated:
        return f", json_each(d.record, '${quoted}') AS g", "g.value"
    return "", f"json_extract(d.record, '${quoted}')"


def group_key(value: object) -> str:
    """A group's key as text: a whole number without its `.0`, none as ""."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)
