"""The filter language translated to SQLite SQL over a record's JSON.

Only grammar names are spliced into SQL text (see _inline_path); every
literal is a bound parameter.

It means exactly what `filter.matches` means in Python; a property test holds
the two to the same answers. Records are stored as JSON (see schema.py) in a
column; timestamps are stored as integer microseconds since the epoch.

Lists fan out: a comparison through a list holds if it holds for any
element. Which path segments are lists comes from the schema: for a repeated
field `a.b` the list is `a` (a list of objects); for a repeated field `a`
the leaf itself is the list. A leaf that holds a list (a multi-select form
answer) is fanned out by json_each, which yields a scalar leaf as itself.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

from memory_service.search.filter import (
    And,
    FieldSpec,
    FieldType,
    Node,
    Not,
    Or,
    Restriction,
    Schema,
    Star,
    epoch_micros,
    parse_timestamp,
)

# JSON types as json_each reports them.
_NUMBER_TYPES = "('integer', 'real')"
_BOOL_TYPES = "('true', 'false')"


def json_path(segments: tuple[str, ...] | list[str]) -> str:
    """A JSON path with every label quoted, so any key is safe."""
    return "$" + "".join("." + json.dumps(segment) for segment in segments)


def _inline_path(segments: tuple[str, ...] | list[str]) -> str:
    """A JSON path to splice into SQL text. Filter paths are grammar names
    ([A-Za-z_][A-Za-z0-9_-]*), so they can never close the SQL string; the
    check keeps it that way if the grammar ever changes."""
    path = json_path(segments)
    if "'" in path:
        raise ValueError(f"unsafe path {path!r}")
    return path


def to_micros(text: str) -> int:
    """An RFC 3339 timestamp as integer microseconds since the epoch."""
    return epoch_micros(parse_timestamp(text))


def register_functions(connection: sqlite3.Connection) -> None:
    """The Python string rules the SQL needs (SQLite's own lower/upper are ASCII-only)."""
    connection.create_function(
        "py_upper",
        1,
        lambda text: text.upper() if isinstance(text, str) else text,
        deterministic=True,
    )
    connection.create_function(
        "py_contains",
        2,
        lambda text, part: isinstance(text, str) and str(part).lower() in text.lower(),
        deterministic=True,
    )


def _is_enum(spec: FieldSpec | None) -> bool:
    return spec is not None and spec.type is FieldType.ENUM


def _typed_literal(literal: object, spec: FieldSpec | None) -> tuple[str, object]:
    """(kind, bound value) of a literal: booleans as 0/1, enum names upper-case."""
    if isinstance(literal, bool):
        return "bool", int(literal)
    if isinstance(literal, float):
        return "number", literal
    assert isinstance(literal, str)
    return "text", literal.upper() if _is_enum(spec) else literal


Fact = tuple[str, str, object]  # (path, type, value)


def _fact_value(value: object) -> tuple[str, object]:
    if value is None:
        return "null", None
    if isinstance(value, bool):
        return "bool", int(value)
    if isinstance(value, int | float):
        return "number", value
    return "text", str(value)


def record_facts(record: dict[str, object]) -> list[Fact]:
    """The record's list and map values as indexable (path, type, value) rows.

    A list of objects yields one row per element and field (`agents.tier`);
    a list of scalars one row per element (`tags`); a map one `key` row per
    key at the map's path plus its values (a list value fanned out) at
    `map.key`. Top-level scalars are not facts: they have columns.
    """
    facts: list[Fact] = []
    for name, value in record.items():
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    facts += [(f"{name}.{key}", *_fact_value(v)) for key, v in item.items()]
                else:
                    facts.append((name, *_fact_value(item)))
        elif isinstance(value, dict):
            for key, inner in value.items():
                facts.append((name, "key", key))
                items = inner if isinstance(inner, list) else [inner]
                facts += [(f"{name}.{key}", *_fact_value(item)) for item in items]
    return facts


@dataclass
class SqlFilter:
    """A WHERE fragment and its parameters."""

    sql: str
    params: list[object] = field(default_factory=list)


class FilterCompiler:
    """Compiles trees against one schema, for one record column."""

    def __init__(
        self,
        schema: Schema,
        record_column: str,
        timestamp_columns: dict[str, str],
        scalar_columns: dict[str, str] | None = None,
        facts: tuple[str, str] | None = None,
    ) -> None:
        self._schema = schema
        self._record = record_column
        # Top-level timestamp fields kept in their own integer columns.
        self._timestamps = timestamp_columns
        # Top-level typed scalars kept in their own columns (booleans as 0/1,
        # enums upper-case): the schema check guarantees the literal's type,
        # so a plain column comparison means what filter._compare means.
        self._scalars = scalar_columns or {}
        # (facts table, the record's rowid expression): list and map values
        # as indexed rows (see record_facts), instead of walking JSON per row.
        self._facts = facts

    def compile(self, node: Node | None) -> SqlFilter:
        """The WHERE fragment for a checked tree ("1" for no filter)."""
        if node is None:
            return SqlFilter("1")
        params: list[object] = []
        return SqlFilter(self._node(node, params), params)

    def _node(self, node: Node, params: list[object]) -> str:
        if isinstance(node, And):
            return "(" + " AND ".join(self._node(c, params) for c in node.children) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self._node(c, params) for c in node.children) + ")"
        if isinstance(node, Not):
            return f"(NOT {self._node(node.child, params)})"
        return self._restriction(node, params)

    def _fans_out_parent(self, spec: FieldSpec | None, path: tuple[str, ...]) -> bool:
        return spec is not None and spec.repeated and len(path) > 1

    def _values(self, node: Restriction, spec: FieldSpec | None) -> str:
        """A FROM clause yielding one row `v` per value at the path (lists fanned out).

        An object at the leaf yields nothing: filter._compare never matches a map.
        """
        path = node.path
        if self._fans_out_parent(spec, path):
            leaf = _inline_path(path[1:])
            return (
                f"json_each({self._record}, '{_inline_path(path[:1])}') AS o, "
                f"json_each(o.value, '{leaf}') AS v "
                f"WHERE json_type(o.value, '{leaf}') IS NOT 'object'"
            )
        full = _inline_path(path)
        return (
            f"json_each({self._record}, '{full}') AS v "
            f"WHERE json_type({self._record}, '{full}') IS NOT 'object'"
        )

    def _restriction(self, node: Restriction, params: list[object]) -> str:
        spec = self._schema.lookup(node.path)
        dotted = ".".join(node.path)
        if isinstance(node.value, Star):
            if dotted in self._scalars or (spec is not None and spec.type is FieldType.MAP):
                return "1"  # Every record has its top-level scalars and maps.
            if self._facts is not None and (len(node.path) > 1 or (spec and spec.repeated)):
                table, rowid = self._facts
                params.append(dotted)
                return f"({rowid} IN (SELECT rowid FROM {table} WHERE path = ? AND t <> 'key'))"
            return self._present(node, spec)
        if dotted in self._timestamps and spec is not None and spec.type is FieldType.TIMESTAMP:
            params.append(to_micros(str(node.value)))
            op = "=" if node.op == ":" else node.op
            return f"({self._timestamps[dotted]} {op} ?)"
        if dotted in self._scalars and spec is not None and not spec.repeated:
            return self._scalar(self._scalars[dotted], node, spec, params)
        if self._facts is not None and (len(node.path) > 1 or (spec and spec.repeated)):
            return self._fact(node, spec, params)
        if node.op == ":":
            return self._has(node, spec, params)
        condition = self._compare("v", node.op, node.value, spec, params)
        return f"EXISTS (SELECT 1 FROM {self._values(node, spec)} AND {condition})"

    def _fact(self, node: Restriction, spec: FieldSpec | None, params: list[object]) -> str:
        """A restriction on a list or map value, through the facts table."""
        assert self._facts is not None
        table, rowid = self._facts
        path = ".".join(node.path)
        literal = node.value
        if node.op == ":":
            params.append(path)
            if isinstance(literal, str):
                params.append(literal)
                items = "t = 'text' AND py_contains(v, ?)"
            else:
                items = self._fact_compare("=", literal, None, params)
            params += [path, str(literal)]
            return (
                f"({rowid} IN (SELECT rowid FROM {table} WHERE path = ? AND {items}) OR "
                f"{rowid} IN (SELECT rowid FROM {table} WHERE path = ? AND t = 'key' AND v = ?))"
            )
        params.append(path)
        condition = self._fact_compare(node.op, literal, spec, params)
        return f"({rowid} IN (SELECT rowid FROM {table} WHERE path = ? AND {condition}))"

    @staticmethod
    def _fact_compare(
        op: str, literal: object, spec: FieldSpec | None, params: list[object]
    ) -> str:
        kind, value = _typed_literal(literal, spec)
        params.append(value)
        # Records hold enum names upper-case already, so the plain column (and
        # its index) compares as filter._compare does.
        return f"t = '{kind}' AND v {op} ?"

    def _scalar(self, column: str, node: Restriction, spec: FieldSpec, params: list[object]) -> str:
        literal = node.value
        if isinstance(literal, bool):
            params.append(1 if literal else 0)
            return f"({column} = ?)" if node.op == ":" else f"({column} {node.op} ?)"
        if isinstance(literal, str) and node.op == ":":
            params.append(literal)
            return f"py_contains({column}, ?)"
        if isinstance(literal, str) and spec.type is FieldType.ENUM:
            literal = literal.upper()
        params.append(literal)
        return f"({column} = ?)" if node.op == ":" else f"({column} {node.op} ?)"

    def _present(self, node: Restriction, spec: FieldSpec | None) -> str:
        """`path:*`: some value is there (a map counts, an empty list does not)."""
        path = node.path
        if self._fans_out_parent(spec, path):
            leaf = _inline_path(path[1:])
            return (
                f"EXISTS (SELECT 1 FROM json_each({self._record}, '{_inline_path(path[:1])}') AS o "
                f"WHERE json_type(o.value, '{leaf}') IS 'object' OR EXISTS "
                f"(SELECT 1 FROM json_each(o.value, '{leaf}')))"
            )
        full = _inline_path(path)
        return (
            f"(json_type({self._record}, '{full}') IS 'object' OR EXISTS "
            f"(SELECT 1 FROM json_each({self._record}, '{full}')))"
        )

    def _compare(
        self,
        value: str,
        op: str,
        literal: object,
        spec: FieldSpec | None,
        params: list[object],
    ) -> str:
        """A condition on one JSON value (alias.type, alias.value), as filter._compare."""
        kind, typed = _typed_literal(literal, spec)
        params.append(typed)
        json_types = {"bool": _BOOL_TYPES, "number": _NUMBER_TYPES, "text": "('text')"}[kind]
        column = f"py_upper({value}.value)" if _is_enum(spec) else f"{value}.value"
        return f"({value}.type IN {json_types} AND {column} {op} ?)"

    def _has(self, node: Restriction, spec: FieldSpec | None, params: list[object]) -> str:
        """`path:value`, as filter._has: in each container holding the last label,
        a list has an equal item (strings: contain the text, ignoring case), a
        scalar is equal (strings: contain), or a map has the key."""
        literal = node.value
        *parent, last = node.path
        last_path = _inline_path([last])
        if self._fans_out_parent(spec, node.path):
            holders = f"json_each({self._record}, '{_inline_path(parent)}') AS h"
            container = "h.value"
        elif parent:
            parent_path = _inline_path(parent)
            holders = f"(SELECT json_extract({self._record}, '{parent_path}') AS value) AS h"
            container = "h.value"
        else:
            holders = ""
            container = self._record
        if isinstance(literal, str):
            params.append(literal)
            item_match = "(i.type = 'text' AND py_contains(i.value, ?))"
        else:
            item_match = self._compare("i", "=", literal, None, params)
        params.append(json_path([last, str(literal)]))
        inner = (
            f"(json_type({container}, '{last_path}') IS NOT 'object' AND EXISTS "
            f"(SELECT 1 FROM json_each({container}, '{last_path}') AS i WHERE {item_match})) "
            f"OR (json_type({container}, '{last_path}') IS 'object' "
            f"AND json_type({container}, ?) IS NOT NULL)"
        )
        if not holders:
            return f"({inner})"
        return f"EXISTS (SELECT 1 FROM {holders} WHERE json_valid(h.value) AND ({inner}))"
