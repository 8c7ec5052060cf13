"""The SQL the search index runs over its tables (their schema is in
index.py): the filter compiler bound to its columns, the namespace token that
scopes a full-text match, the ranked statements of a search, and the
grouping of a count."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

from memory_service.search.query import Term, to_fts_expression
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

LN2 = 0.6931471805599453
# The ranking of a keyword hit: log(bm25 * 0.5^h), which never underflows, so
# very old patterns still rank by age instead of all tying at zero.
RANK_SQL = f"ln(max(k, 1e-12)) - h * {LN2}"


def namespace_token(namespace: str) -> str:
    """The namespace as one full-text token, so the index itself scopes a
    match to a namespace (a tokenizer would split "team-a" into two words)."""
    return "n" + namespace.encode().hex()


def add_expiry_column(connection: sqlite3.Connection) -> None:
    """Adds docs.expire_us to a file written before retention existed."""
    columns = {str(row[1]) for row in connection.execute("PRAGMA table_info(docs)")}
    if columns and "expire_us" not in columns:
        connection.execute("ALTER TABLE docs ADD COLUMN expire_us INTEGER NOT NULL DEFAULT 0")


@dataclass(frozen=True)
class RankedQuery:
    """A search's statement with its parameters, and the condition on docs
    `d` (with its parameters) that exactly its matches meet, for counting."""

    sql: str
    params: list[object]
    count_sql: str
    count_params: list[object]
    table: str = ""  # The full-text table that ranks; "" without terms.
    match: str = ""  # Its MATCH text.
    prefixed: bool = False  # Whether prefix terms also filter through pattern_words.


def decay_columns(recency: tuple[int, float] | None) -> tuple[str, list[object]]:
    """The columns r (the recency factor) and h (the age in half-lives, so
    r = 0.5^h) of (now in microseconds, half-life in seconds), and their
    parameters; without recency every document is of age 0."""
    if recency is not None:
        now_us, half_life_seconds = recency
        halves = "(max(0, ? - d.create_time_us) / ?)"
        params: list[object] = [now_us, half_life_seconds * 1e6]
    else:
        halves, params = "0.0", []
    return f"pow(0.5, {halves}) AS r, {halves} AS h", params * 2


def ranked_query(
    namespace: str,
    expanded: list[list[Term]],
    decay: tuple[str, list[object]],
    filter_sql: str,
    filter_params: list[object],
    limit: int,
    offset: int,
) -> RankedQuery:
    """The statement of a search for the terms, each ORed with its corrections.

    Whole-word terms rank by BM25 in the stemmed table; prefix terms filter
    through the unstemmed one (ranking there when alone); equal ranks go
    newest first, then by id. Without terms the filter alone selects,
    newest first.
    """
    columns, decay_params = decay
    if not expanded:
        sql = (
            f"SELECT d.body, 0.0, {columns}, d.rowid FROM docs d "
            f"WHERE d.namespace = ? AND {filter_sql} "
            "ORDER BY h, d.create_time_us DESC, d.doc_id LIMIT ? OFFSET ?"
        )
        recent: list[object] = [*decay_params, namespace, *filter_params, limit, offset]
        return RankedQuery(sql, recent, filter_sql, filter_params)
    words = [group for group in expanded if not group[0].prefix]
    prefixes = [group for group in expanded if group[0].prefix]
    ranked = "pattern_text" if words else "pattern_words"
    token = namespace_token(namespace)
    # The namespace is part of the match itself: the index scopes it.
    match = f'ns : "{token}" AND body : ({fts_expression(words or prefixes)})'
    prefix_sql = ""
    prefix_params: list[object] = []
    if words and prefixes:
        prefix_sql = "AND d.rowid IN (SELECT rowid FROM pattern_words WHERE pattern_words MATCH ?) "
        prefix_params = [f'ns : "{token}" AND body : ({fts_expression(prefixes)})']
    sql = (
        f"SELECT d.body, -bm25({ranked}, 0.0, 1.0) AS k, {columns}, d.rowid "
        f"FROM {ranked} JOIN docs d ON d.rowid = {ranked}.rowid "
        f"WHERE {ranked} MATCH ? AND {filter_sql} {prefix_sql}"
        f"ORDER BY {RANK_SQL} DESC, d.create_time_us DESC, d.doc_id "
        "LIMIT ? OFFSET ?"
    )
    params = [*decay_params, match, *filter_params, *prefix_params, limit, offset]
    count_sql = (
        f"d.rowid IN (SELECT rowid FROM {ranked} WHERE {ranked} MATCH ?) "
        f"AND {filter_sql} {prefix_sql}"
    )
    count_params = [match, *filter_params, *prefix_params]
    return RankedQuery(sql, params, count_sql, count_params, ranked, match, bool(prefix_sql))


def fts_expression(groups: list[list[Term]]) -> str:
    """AND of groups, each an OR of a term and its corrections."""
    parts = []
    for group in groups:
        inner = " OR ".join(term.to_fts() for term in group)
        parts.append(f"({inner})" if len(group) > 1 else inner)
    return " AND ".join(parts) if parts else to_fts_expression([])


def expired_matches(
    db: sqlite3.Connection, namespace: str, table: str, match: str, now: list[object]
) -> int:
    """How many expired, unpurged documents of the namespace the match finds.

    Few between purges, and the oldest, so mostly a narrow rowid range:
    the full-text index reads only the matches in that range.
    """
    expired = {
        int(rowid)
        for (rowid,) in db.execute(
            "SELECT rowid FROM docs WHERE namespace = ? AND expire_us > 0 AND expire_us <= ?",
            [namespace, *now],
        )
    }
    if not expired:
        return 0
    found = db.execute(
        f"SELECT rowid FROM {table} WHERE {table} MATCH ? AND rowid BETWEEN ? AND ?",
        (match, min(expired), max(expired)),
    )
    return sum(1 for (rowid,) in found if int(rowid) in expired)


def matched_terms(
    db: sqlite3.Connection, rowid: int, terms: list[Term], notes: list[str]
) -> tuple[str, ...]:
    """Which terms (or their corrections) this document contains."""
    candidates = [" ".join(term.words) + ("*" if term.prefix else "") for term in terms]
    candidates += [note.split("->", 1)[1] for note in notes]
    found = []
    for candidate in candidates:
        term = Term(tuple(candidate.rstrip("*").split()), candidate.endswith("*"))
        table = "pattern_words" if term.prefix else "pattern_text"
        hit = db.execute(
            f"SELECT 1 FROM {table} WHERE rowid = ? AND {table} MATCH ?",
            (rowid, f"body : ({term.to_fts()})"),
        ).fetchone()
        if hit:
            found.append(candidate)
    return tuple(found)


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
