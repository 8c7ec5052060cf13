"""The filter language pushed down into the text engine (text_engine.py).

A filter tree compiles to a tantivy query that matches a SUPERSET of what
the filter matches, and says whether it matches exactly that. Search then
verifies candidates with SQLite (index_sql.COMPILER, the filter's meaning of
record) only when the push-down was not exact.

What a document holds for this (`fact_terms`, `NUMBER_FIELDS`):

- `facts`, one raw (untokenized) term per value a filter can compare
  exactly: `path␟kind␟value`, kind `s` text, `S` text too long for a term
  (its SHA-256), `b` boolean (0/1), `n` number (its float repr), `k` a key of
  a map, and `path␟p` for a path holding any value (the `path:*` of lists
  and maps). Top-level strings and booleans, and every list and map value
  (sql_filter.record_facts: agents.*, tags, form_responses.*,
  tier_distribution.*), so `=` means what the SQL means: an equal value of
  the same kind (enum names upper-case, as records hold them).
- numeric top-level fields in fast columns (`NUMBER_FIELDS`), `created`
  (create_time in microseconds): comparisons are exact range queries.
- Ranges over numbers in lists and maps (form answers) become the set of
  values the namespace's index has ever held at that path in range
  (`Numbers`): exact, up to MAX_RANGE_TERMS values, else all documents.

Pushed exactly: =, != and ranges on top-level fields; = and `:` of numbers
and booleans, `=` of strings, ranges of numbers and `:*` on lists and maps;
a map's `:key`. Not pushed (all documents, verified): `:` of text (a
case-insensitive substring), != through a list, ranges of strings, anything
on `content`. NOT is pushed only over an exact child: NOT of a superset is
not a superset.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
from memory_service.search.sql_filter import record_facts, to_micros

FACTS = "facts"
CREATED = "created"
SEPARATOR = "\x1f"
# Top-level numeric record fields, each in a fast column of its own name.
NUMBER_FIELDS = ("total_cost_usd", "total_duration_seconds", "agent_count")
STRING_FIELDS = ("id", "template_id", "type", "classification", "runner", "run_id")
BOOL_FIELDS = ("success", "pinned")
# A text value longer than this (in UTF-8 bytes) is kept as its digest: a
# term must stay well under tantivy's 64 KiB limit.
MAX_TERM_BYTES = 512
# A range over list or map numbers becomes a set of terms; past this many it
# is not pushed down (all documents, verified).
MAX_RANGE_TERMS = 1024


def number_key(value: float) -> str:
    """A number as one term text: equal numbers (80 and 80.0, -0.0 and 0.0) alike."""
    return repr(float(value) + 0.0)


def _text(path: str, letter: str, value: str) -> str:
    """A text value's term; a long one as its digest (the letter upper-case)."""
    if len(value.encode()) > MAX_TERM_BYTES:
        digest = hashlib.sha256(value.encode()).hexdigest()
        return f"{path}{SEPARATOR}{letter.upper()}{SEPARATOR}{digest}"
    return f"{path}{SEPARATOR}{letter}{SEPARATOR}{value}"


def _term(path: str, kind: str, value: object) -> str:
    """The fact term of a value of a kind (sql_filter's: text, key, bool, number)."""
    if kind == "text":
        return _text(path, "s", str(value))
    if kind == "key":
        return _text(path, "k", str(value))
    if kind == "bool":
        return f"{path}{SEPARATOR}b{SEPARATOR}{int(bool(value))}"
    assert isinstance(value, int | float)
    return f"{path}{SEPARATOR}n{SEPARATOR}{number_key(value)}"


def presence_term(path: str) -> str:
    """The term every document with some value (not a map key) at the path holds."""
    return f"{path}{SEPARATOR}p"


def fact_terms(record: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, float]]]:
    """A record's fact terms, and the (path, number) pairs among them."""
    terms = [_term(name, "text", record[name]) for name in STRING_FIELDS]
    terms += [_term(name, "bool", record[name]) for name in BOOL_FIELDS]
    numbers: list[tuple[str, float]] = []
    present: set[str] = set()
    for path, kind, value in record_facts(dict(record)):
        if kind != "key":
            present.add(path)
        if kind == "null":
            continue
        if kind == "number":
            assert isinstance(value, int | float)
            numbers.append((path, float(value) + 0.0))
        terms.append(_term(path, kind, value))
    terms += [presence_term(path) for path in sorted(present)]
    return terms, numbers


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

    def _term(self, term: str) -> tantivy.Query:
        return tantivy.Query.term_query(self._schema, FACTS, term, index_option="basic")

    def _terms(self, terms: list[str]) -> tantivy.Query:
        if len(terms) == 1:
            return self._term(terms[0])
        return tantivy.Query.term_set_query(self._schema, FACTS, terms)

    def _restriction(self, node: Restriction) -> Pushed:
        spec = PATTERN_SCHEMA.lookup(node.path)
        dotted = ".".join(node.path)
        top = len(node.path) == 1 and not (spec is not None and spec.repeated)
        if isinstance(node.value, Star):
            if top:
                return _ALL  # Every record has its top-level fields and maps.
            return Pushed(self._term(presence_term(dotted)), True)
        if dotted == "create_time":
            return self._range(CREATED, node.op, to_micros(str(node.value)), integer=True)
        if top and dotted in NUMBER_FIELDS:
            assert isinstance(node.value, float)  # Checked against the schema.
            return self._range(dotted, node.op, node.value, integer=False)
        if top and dotted in (*STRING_FIELDS, *BOOL_FIELDS):
            return self._scalar(dotted, node, spec)
        if top and spec is not None and spec.type is FieldType.MAP:
            # `map:key` (sql_filter._has): the map has the key.
            return Pushed(self._term(_term(dotted, "key", str(node.value))), True)
        if top:
            return _APPROXIMATE  # content: free text, not kept as terms.
        return self._fact(dotted, node, spec)

    def _scalar(self, path: str, node: Restriction, spec: FieldSpec | None) -> Pushed:
        """A top-level string or boolean: every record holds one value of its type."""
        value = node.value
        if isinstance(value, str) and node.op == ":":
            return _APPROXIMATE  # A substring, ignoring case.
        if node.op not in ("=", "!=", ":"):
            return _APPROXIMATE  # Strings ordered: not kept in order.
        if isinstance(value, bool):
            term = _term(path, "bool", value)
        else:
            text = str(value).upper() if _is_enum(spec) else str(value)
            term = _term(path, "text", text)
        equal = self._term(term)
        return Pushed(_excluding(equal) if node.op == "!=" else equal, True)

    def _fact(self, path: str, node: Restriction, spec: FieldSpec | None) -> Pushed:
        """A value in a list or map (sql_filter.FilterCompiler._fact)."""
        value = node.value
        if isinstance(value, str) and node.op == ":":
            return _APPROXIMATE
        if node.op == ":":
            typed = self._typed(path, value, spec)
            return Pushed(self._terms([typed, _term(path, "key", str(value))]), True)
        if node.op == "=":
            return Pushed(self._term(self._typed(path, value, spec)), True)
        if node.op == "!=" or isinstance(value, bool) or not isinstance(value, float):
            return _APPROXIMATE  # Some other value: not a negation.
        low, high, low_in, high_in = _bounds(node.op, value)
        values = self._numbers.between(path, low, high, low_in, high_in)
        if len(values) > MAX_RANGE_TERMS:
            return _APPROXIMATE
        if not values:
            return Pushed(tantivy.Query.empty_query(), True)
        return Pushed(self._terms([_term(path, "number", v) for v in values]), True)

    @staticmethod
    def _typed(path: str, value: object, spec: FieldSpec | None) -> str:
        if isinstance(value, bool):
            return _term(path, "bool", value)
        if isinstance(value, float):
            return _term(path, "number", value)
        text = str(value)
        return _term(path, "text", text.upper() if _is_enum(spec) else text)

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
