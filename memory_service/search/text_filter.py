"""The filter language pushed down into the text engine (text_engine.py).

A filter tree compiles to a tantivy query that matches a SUPERSET of what
the filter matches, and says whether it matches exactly that. Only when it
does not does a search ask SQLite (index_sql.COMPILER, the filter's meaning
of record) which documents pass (text_search._passing).

What a document holds for this, all taken from its SQLite rows by SQL (so
building costs no Python per value; see text_engine.py):

- `facts`: its record (less content and create time) as a JSON field,
  strings untokenized: tantivy indexes every value at its path, lists fanned
  out (agents.tier, tags, a multi-select answer), with its type, so `=`
  means what the SQL means: an equal value of the same kind (80 and 80.0
  alike; enum names upper-case, as records hold them). Under `_marks` (no
  record field has that name): `p␟path` for every path of a list or map
  holding some value (the `path:*` of lists and maps), and `k␟map␟key` for
  every key of a map, from the doc_facts table.
- numeric top-level fields in fast columns (`NUMBER_FIELDS`), `created`
  (create_time in microseconds): comparisons are exact range queries.
- Ranges over numbers in lists and maps (form answers) become the set of
  values the index has ever held at that path in range (`Numbers`): exact,
  up to MAX_RANGE_TERMS values, else all documents.

Pushed exactly: =, != and ranges on top-level fields; = and `:` of numbers
and booleans, `=` of strings, ranges of numbers and `:*` on lists and maps;
a map's `:key`. Not pushed (all documents, verified): `:` of text (a
case-insensitive substring), != through a list, ranges of strings, anything
on `content`, and text longer than MAX_TERM_BYTES (not kept as a term).
NOT is pushed only over an exact child: NOT of a superset is not a superset.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import orjson
import tantivy

from memory_service.search.filter import (
    And,
    FieldSpec,
    FieldType,
    Node,
    Not,
    Or,
    Restriction,
    Star,
)
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.search.sql_filter import Fact, to_micros

FACTS = "facts"
MARKS = f"{FACTS}._marks"
CREATED = "created"
SEPARATOR = "\x1f"  # Within a mark.
# Top-level numeric record fields, each in a fast column of its own name.
NUMBER_FIELDS = ("total_cost_usd", "total_duration_seconds", "agent_count")
# Top-level strings and booleans: every record holds one of its type.
SCALAR_FIELDS = ("id", "template_id", "type", "classification", "runner", "run_id")
BOOL_FIELDS = ("success", "pinned")
# Text longer than this (UTF-8 bytes) is not pushed down: tantivy leaves very
# long tokens out, and marks of longer keys are not made.
MAX_TERM_BYTES = 512
# A range over list or map numbers becomes a set of terms; past this many it
# is not pushed down (all documents, verified).
MAX_RANGE_TERMS = 1024

# The SQL of a document's facts (its record, with its marks), over docs `d`:
# the marks are written with the document (`marks_json`); a file from before
# has NULL there, and they are made from its doc_facts rows alike.
MARKS_SQL = (
    "(SELECT json_group_array(DISTINCT CASE WHEN f.t = 'key' "  # noqa: S608 - constants only
    "THEN 'k' || char(31) || f.path || char(31) || f.v ELSE 'p' || char(31) || f.path END) "
    "FROM doc_facts f WHERE f.rowid = d.rowid "
    f"AND (f.t <> 'key' OR length(CAST(f.v AS BLOB)) <= {MAX_TERM_BYTES}))"
)
FACTS_SQL = (
    "json_set(json_remove(d.record, '$.content', '$.create_time'), "
    f"'$._marks', json(coalesce(d.marks, {MARKS_SQL})))"
)
# Every (path, number) of list and map values of a source (bounded by its
# distinct values; booleans are 0/1 here too, which only adds values).
NUMBERS_SQL = "SELECT DISTINCT path, v FROM doc_facts WHERE typeof(v) IN ('integer', 'real')"


def marks_json(facts: list[Fact]) -> str:
    """The marks of a record's facts (sql_filter.record_facts), as MARKS_SQL makes them."""
    marks = {
        key_mark(path, str(value)) if kind == "key" else presence_mark(path)
        for path, kind, value in facts
        if kind != "key" or len(str(value).encode()) <= MAX_TERM_BYTES
    }
    return orjson.dumps(sorted(marks)).decode()


def presence_mark(path: str) -> str:
    """The mark of a list or map path holding some value."""
    return f"p{SEPARATOR}{path}"


def key_mark(path: str, key: str) -> str:
    """The mark of a map holding a key."""
    return f"k{SEPARATOR}{path}{SEPARATOR}{key}"


@dataclass
class Numbers:
    """Every number an index has held at each list or map path (never
    shrinks: a value no document holds any more matches nothing)."""

    _values: dict[str, set[float]] = field(default_factory=dict)
    _sorted: dict[str, list[float]] = field(default_factory=dict)

    def add(self, path: str, value: float) -> None:
        """Notes a value at a path (NaN never compares, so it is left out)."""
        if value != value:
            return
        values = self._values.setdefault(path, set())
        if value not in values:
            values.add(value)
            self._sorted.pop(path, None)

    def between(
        self, path: str, low: float | None, high: float | None, low_in: bool, high_in: bool
    ) -> list[float]:
        """The known values at the path within the bounds, ascending."""
        if path not in self._sorted:
            self._sorted[path] = sorted(self._values.get(path, ()))
        values = self._sorted[path]
        start = 0
        if low is not None:
            start = (bisect.bisect_left if low_in else bisect.bisect_right)(values, low)
        end = len(values)
        if high is not None:
            end = (bisect.bisect_right if high_in else bisect.bisect_left)(values, high)
        return values[start:end]


@dataclass(frozen=True)
class Pushed:
    """A pushed-down filter: `query` (None: every document) matches a
    superset of the filter's documents, exactly them when `exact`."""

    query: tantivy.Query | None
    exact: bool


_ALL = Pushed(None, True)
_APPROXIMATE = Pushed(None, False)


class FilterPushdown:
    """Compiles checked filter trees against one index's schema and numbers."""

    def __init__(self, schema: tantivy.Schema, numbers: Numbers) -> None:
        self._schema = schema
        self._numbers = numbers

    def compile(self, node: Node | None) -> Pushed:
        """The tree as a query matching a superset of it (see the module docstring)."""
        if node is None:
            return _ALL
        if isinstance(node, And):
            parts = [self.compile(child) for child in node.children]
            queries = [part.query for part in parts if part.query is not None]
            exact = all(part.exact for part in parts)
            return Pushed(_every(queries), exact)
        if isinstance(node, Or):
            parts = [self.compile(child) for child in node.children]
            exact = all(part.exact for part in parts)
            if any(part.query is None for part in parts):
                return Pushed(None, exact)  # One branch takes every document.
            queries = [part.query for part in parts if part.query is not None]
            return Pushed(_any(queries), exact)
        if isinstance(node, Not):
            child = self.compile(node.child)
            if not child.exact:
                return _APPROXIMATE
            if child.query is None:
                return Pushed(tantivy.Query.empty_query(), True)
            return Pushed(_excluding(child.query), True)
        return self._restriction(node)

    def _fact(self, path: str, value: Any) -> tantivy.Query:
        """Documents with a value of the literal's kind equal to it at the path."""
        return tantivy.Query.term_query(self._schema, f"{FACTS}.{path}", value)

    def _mark(self, mark: str) -> tantivy.Query:
        return tantivy.Query.term_query(self._schema, MARKS, mark)

    def _restriction(self, node: Restriction) -> Pushed:
        spec = PATTERN_SCHEMA.lookup(node.path)
        dotted = ".".join(node.path)
        top = len(node.path) == 1 and not (spec is not None and spec.repeated)
        value = node.value
        if isinstance(value, Star):
            if top:
                return _ALL  # Every record has its top-level fields and maps.
            return Pushed(self._mark(presence_mark(dotted)), True)
        if isinstance(value, str) and not _keepable(value):
            return _APPROXIMATE
        if dotted == "create_time":
            return self._range(CREATED, node.op, to_micros(str(value)), integer=True)
        if top and dotted in NUMBER_FIELDS:
            assert isinstance(value, float)  # Checked against the schema.
            return self._range(dotted, node.op, value, integer=False)
        if top and dotted in (*SCALAR_FIELDS, *BOOL_FIELDS):
            return self._scalar(dotted, node, spec)
        if top and spec is not None and spec.type is FieldType.MAP:
            # `map:key` (sql_filter._has): the map has the key.
            key = str(value)
            if not _keepable(key):
                return _APPROXIMATE
            return Pushed(self._mark(key_mark(dotted, key)), True)
        if top:
            return _APPROXIMATE  # content: free text, not kept as terms.
        return self._listed(dotted, node, spec)

    def _scalar(self, path: str, node: Restriction, spec: FieldSpec | None) -> Pushed:
        """A top-level string or boolean: every record holds one value of its type."""
        value = node.value
        if isinstance(value, str) and node.op == ":":
            return _APPROXIMATE  # A substring, ignoring case.
        if node.op not in ("=", "!=", ":"):
            return _APPROXIMATE  # Strings ordered: not kept in order.
        equal = self._fact(path, _typed(value, spec))
        return Pushed(_excluding(equal) if node.op == "!=" else equal, True)

    def _listed(self, path: str, node: Restriction, spec: FieldSpec | None) -> Pushed:
        """A value in a list or map (sql_filter.FilterCompiler._fact)."""
        value = node.value
        if isinstance(value, str) and node.op == ":":
            return _APPROXIMATE
        if node.op == ":":
            key = str(value)
            either = [self._fact(path, _typed(value, spec))]
            if _keepable(key):
                either.append(self._mark(key_mark(path, key)))
            return Pushed(_any(either), _keepable(key))
        if node.op == "=":
            return Pushed(self._fact(path, _typed(value, spec)), True)
        if node.op == "!=" or isinstance(value, bool) or not isinstance(value, float):
            return _APPROXIMATE  # Some other value: not a negation.
        low, high, low_in, high_in = _bounds(node.op, value)
        values = self._numbers.between(path, low, high, low_in, high_in)
        if len(values) > MAX_RANGE_TERMS:
            return _APPROXIMATE
        if not values:
            return Pushed(tantivy.Query.empty_query(), True)
        return Pushed(tantivy.Query.term_set_query(self._schema, f"{FACTS}.{path}", values), True)

    def _range(self, name: str, op: str, value: float, *, integer: bool) -> Pushed:
        kind = tantivy.FieldType.Integer if integer else tantivy.FieldType.Float
        bound: float | int = int(value) if integer else float(value)
        if op in ("=", ":", "!="):
            equal = tantivy.Query.range_query(self._schema, name, kind, bound, bound)
            return Pushed(_excluding(equal) if op == "!=" else equal, True)
        low, high, low_in, high_in = _bounds(op, bound)
        query = tantivy.Query.range_query(
            self._schema,
            name,
            kind,
            lower_bound=low,
            upper_bound=high,
            include_lower=low_in,
            include_upper=high_in,
        )
        return Pushed(query, True)


def _keepable(text: str) -> bool:
    """Whether text is kept as a term (facts) or inside a mark (keys)."""
    return len(text.encode()) <= MAX_TERM_BYTES


def _typed(value: object, spec: FieldSpec | None) -> Any:
    """The literal as the record holds it: enum names upper-case."""
    if isinstance(value, str) and _is_enum(spec):
        return value.upper()
    return value


def _bounds(op: str, value: Any) -> tuple[Any, Any, bool, bool]:
    """(low, high, low inclusive, high inclusive) of `x op value`."""
    if op == "<":
        return None, value, True, False
    if op == "<=":
        return None, value, True, True
    if op == ">":
        return value, None, False, True
    return value, None, True, True


def _is_enum(spec: FieldSpec | None) -> bool:
    return spec is not None and spec.type is FieldType.ENUM


def _every(queries: list[tantivy.Query]) -> tantivy.Query | None:
    if not queries:
        return None
    if len(queries) == 1:
        return queries[0]
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, query) for query in queries])


def _any(queries: list[tantivy.Query]) -> tantivy.Query:
    if len(queries) == 1:
        return queries[0]
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, query) for query in queries])


def _excluding(query: tantivy.Query) -> tantivy.Query:
    return tantivy.Query.boolean_query(
        [(tantivy.Occur.Must, tantivy.Query.all_query()), (tantivy.Occur.MustNot, query)]
    )
