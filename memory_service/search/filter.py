"""The filter language: a documented subset of AIP-160, parsed with lark.

Grammar, loosest binding first (AIP-160 gives OR precedence over AND):

    filter     := sequence
    sequence   := factor { [AND] factor }        (juxtaposition means AND)
    factor     := term { OR term }
    term       := { NOT | - } simple
    simple     := restriction | "(" sequence ")"
    restriction:= path op value | path ":" value
    op         := = | != | < | <= | > | >=
    path       := name { "." name }
    value      := "string" | number | true | false | bare_word | *

`path : value` is "has": a list has an element equal to value, a map has the
key, a string contains the value (case-insensitive); `path:*` tests presence.
A comparison through a list (agents.tier = "premium") holds if it holds for
any element. Fields are typed by a schema: an unknown field, a wrong literal
type or a syntax error is a FilterError naming the position.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput
from lark.exceptions import VisitError

MAX_FILTER_LENGTH = 2048
MAX_DEPTH = 32  # Keeps checking, matching and the SQL translation shallow.

_GRAMMAR = r"""
?start: sequence

?sequence: factor (_AND? factor)*
?factor: term (_OR term)*
?term: _NOT term -> negation
     | "-" term -> negation
     | simple
?simple: restriction
       | "(" sequence ")"

restriction: path COMPARATOR value
           | path HAS value

path: NAME ("." NAME)*

?value: ESCAPED_STRING -> string
      | SIGNED_NUMBER -> number
      | TRUE -> true
      | FALSE -> false
      | STAR -> star
      | NAME -> bare

COMPARATOR: "<=" | ">=" | "!=" | "=" | "<" | ">"
HAS: ":"
STAR: "*"
_AND.2: /AND\b/
_OR.2: /OR\b/
_NOT.2: /NOT\b/
TRUE.2: /true\b/
FALSE.2: /false\b/
NAME: /[A-Za-z_][A-Za-z0-9_\-]*/

%import common.ESCAPED_STRING
%import common.SIGNED_NUMBER
%import common.WS
%ignore WS
"""

_PARSER = Lark(_GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


class FilterError(ValueError):
    """A filter that cannot be used; the message names the position and problem."""

    def __init__(self, message: str, position: int | None = None) -> None:
        where = f" (at position {position})" if position is not None else ""
        super().__init__(f"{message}{where}")
        self.position = position


# --- the tree -----------------------------------------------------------------


@dataclass(frozen=True)
class Star:
    """The presence wildcard of `path:*`."""


Literal = str | float | bool | Star


@dataclass(frozen=True)
class Restriction:
    """`path op value`; op is one of = != < <= > >= or ":" (has)."""

    path: tuple[str, ...]
    op: str
    value: Literal
    bare: bool = False  # The value was an unquoted word (an enum name, say).


@dataclass(frozen=True)
class Not:
    """Negation."""

    child: Node


@dataclass(frozen=True)
class And:
    """Every child holds."""

    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """Some child holds."""

    children: tuple[Node, ...]


Node = Restriction | Not | And | Or


class _ToTree(Transformer[Token, Node]):
    def path(self, names: list[Token]) -> tuple[str, ...]:
        return tuple(str(name) for name in names)

    def string(self, items: list[Token]) -> tuple[Literal, bool]:
        # Strings use JSON's escapes, so printing with json.dumps round-trips.
        try:
            text = json.loads(str(items[0]))
        except ValueError:
            position = items[0].start_pos
            raise FilterError(f"invalid escape in string {items[0]!s}", position) from None
        try:
            str(text).encode()
        except UnicodeEncodeError:
            # A \ud800 escape alone decodes to a lone surrogate: not text
            # anything can store, so no value could ever equal it.
            raise FilterError(
                f"string {items[0]!s} escapes a lone surrogate; it is not valid Unicode",
                items[0].start_pos,
            ) from None
        return str(text), False

    def number(self, items: list[Token]) -> tuple[Literal, bool]:
        value = float(items[0])
        if not math.isfinite(value):
            raise FilterError(f"number {items[0]!s} is out of range", items[0].start_pos)
        return value, False

    def true(self, _: list[Token]) -> tuple[Literal, bool]:
        return True, False

    def false(self, _: list[Token]) -> tuple[Literal, bool]:
        return False, False

    def star(self, _: list[Token]) -> tuple[Literal, bool]:
        return Star(), False

    def bare(self, items: list[Token]) -> tuple[Literal, bool]:
        return str(items[0]), True

    def restriction(self, items: list[Any]) -> Restriction:
        path, op, (value, bare) = items
        return Restriction(path, str(op), value, bare)

    def negation(self, items: list[Node]) -> Node:
        return Not(items[0])

    def sequence(self, items: list[Node]) -> Node:
        return And(tuple(items))

    def factor(self, items: list[Node]) -> Node:
        return Or(tuple(items))


_TERMINAL_NAMES = {
    "ESCAPED_STRING": "a string",
    "SIGNED_NUMBER": "a number",
    "NAME": "a field name or word",
    "COMPARATOR": "a comparison (= != < <= > >=)",
    "HAS": "':'",
    "STAR": "'*'",
    "TRUE": "true",
    "FALSE": "false",
    "LPAR": "'('",
    "RPAR": "')'",
    "DOT": "'.'",
    "MINUS": "'-'",
    "_AND": "AND",
    "_OR": "OR",
    "_NOT": "NOT",
}


def _expected(terminals: object) -> str:
    names = sorted({_TERMINAL_NAMES.get(str(t), str(t)) for t in terminals})  # type: ignore[attr-defined]
    return ", ".join(names) or "something else"


def parse_filter(text: str) -> Node | None:
    """The tree of a filter; None for an empty filter. Raises FilterError."""
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"longer than {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        return None
    try:
        tree = _PARSER.parse(text)
    except UnexpectedEOF as error:
        expected = _expected(error.expected)
        raise FilterError(f"unexpected end; expected {expected}", len(text)) from None
    except UnexpectedCharacters as error:
        position = error.pos_in_stream or 0
        raise FilterError(f"unexpected character {text[position]!r}", position) from None
    except UnexpectedInput as error:
        expected = _expected(getattr(error, "expected", ()) or ())
        token = getattr(error, "token", None)
        if token is None or token.type == "$END":
            raise FilterError(f"unexpected end; expected {expected}", len(text)) from None
        got = f"unexpected {str(token)!r}"
        raise FilterError(f"{got}; expected {expected}", token.start_pos) from None
    except RecursionError:
        raise FilterError("nested too deeply") from None
    try:
        node: Node = _ToTree().transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, FilterError):
            raise error.orig_exc from None
        raise
    except RecursionError:
        raise FilterError(f"nested deeper than {MAX_DEPTH} levels") from None
    if _depth(node) > MAX_DEPTH:
        raise FilterError(f"nested deeper than {MAX_DEPTH} levels")
    return node


def _depth(root: Node) -> int:
    """Nesting depth, counted without recursion (the tree may be deep)."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Not):
            stack.append((node.child, depth + 1))
        elif isinstance(node, And | Or):
            stack.extend((child, depth + 1) for child in node.children)
    return deepest


# --- printing -----------------------------------------------------------------


def _literal_text(restriction: Restriction) -> str:
    value = restriction.value
    if isinstance(value, Star):
        return "*"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if restriction.bare:
        return value
    return json.dumps(value)


def to_text(node: Node | None) -> str:
    """Canonical text of a tree; parse_filter(to_text(t)) == t."""
    if node is None:
        return ""
    if isinstance(node, Restriction):
        separator = ":" if node.op == ":" else f" {node.op} "
        return f"{'.'.join(node.path)}{separator}{_literal_text(node)}"
    if isinstance(node, Not):
        return f"NOT {_wrapped(node.child)}"
    joiner = " AND " if isinstance(node, And) else " OR "
    return joiner.join(_wrapped(child) for child in node.children)


def _wrapped(node: Node) -> str:
    return f"({to_text(node)})" if isinstance(node, And | Or) else to_text(node)


# --- schema and checking --------------------------------------------------------


class FieldType(StrEnum):
    """The type of a filterable field."""

    STRING = "string"
    NUMBER = "number"
    BOOL = "bool"
    TIMESTAMP = "timestamp"
    ENUM = "enum"
    ANY = "any"  # A dynamic field, e.g. a form answer: any literal type.
    MAP = "map"  # A map of dynamic fields itself: only `map:key` applies.


@dataclass(frozen=True)
class FieldSpec:
    """One filterable field."""

    type: FieldType
    repeated: bool = False
    enum_values: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)  # Hashed by identity: compiled filters are cached per schema.
class Schema:
    """Filterable fields by dotted path; a path ending in `*` matches any key."""

    fields: Mapping[str, FieldSpec]

    def lookup(self, path: tuple[str, ...]) -> FieldSpec | None:
        """The spec of a path, trying exact paths then `prefix.*` wildcards."""
        dotted = ".".join(path)
        if dotted in self.fields:
            return self.fields[dotted]
        if f"{dotted}.*" in self.fields:
            return FieldSpec(FieldType.MAP)  # The map itself, as in `form_responses:key`.
        for cut in range(len(path) - 1, 0, -1):
            wildcard = ".".join(path[:cut]) + ".*"
            if wildcard in self.fields:
                return self.fields[wildcard]
        return None

    def names(self) -> list[str]:
        """The filterable paths, for error messages."""
        return sorted(self.fields)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_micros(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (naive times are UTC).

    Exact integer arithmetic: int(moment.timestamp()) truncates toward zero,
    which put 1969-12-31T23:59:59.5Z half a second after the epoch.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp; naive times are UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_restriction(node: Restriction, schema: Schema) -> Restriction:
    spec = schema.lookup(node.path)
    name = ".".join(node.path)
    if spec is None:
        raise FilterError(f"unknown field {name!r}; filterable fields: {', '.join(schema.names())}")
    value = node.value
    if isinstance(value, Star):
        if node.op != ":":
            raise FilterError(f"'*' is only allowed with ':' ({name}:*)")
        return node
    if spec.type is FieldType.MAP and node.op != ":":
        raise FilterError(f"{name} is a map; use {name}.KEY to compare or {name}:KEY to test a key")
    if spec.type in (FieldType.ANY, FieldType.MAP):
        return node
    if spec.type is FieldType.NUMBER and (isinstance(value, bool) or not isinstance(value, float)):
        raise FilterError(f"{name} is a number; got {_literal_text(node)}")
    if spec.type is FieldType.BOOL and not isinstance(value, bool):
        raise FilterError(f"{name} is true or false; got {_literal_text(node)}")
    if spec.type in (FieldType.STRING, FieldType.TIMESTAMP, FieldType.ENUM) and not isinstance(
        value, str
    ):
        raise FilterError(f"{name} is a {spec.type.value}; got {_literal_text(node)}")
    if spec.type is FieldType.TIMESTAMP:
        try:
            parse_timestamp(str(value))
        except ValueError:
            raise FilterError(f"{name} needs an RFC 3339 timestamp; got {value!r}") from None
    if spec.type is FieldType.ENUM and str(value).upper() not in spec.enum_values:
        raise FilterError(f"{name} is one of {', '.join(spec.enum_values)}; got {value!r}")
    if spec.type in (FieldType.BOOL,) and node.op not in ("=", "!=", ":"):
        raise FilterError(f"{name} supports only = and !=")
    return node


def check_filter(node: Node | None, schema: Schema) -> Node | None:
    """The tree unchanged if every restriction fits the schema; else FilterError."""
    if node is None:
        return None
    if isinstance(node, Restriction):
        return _check_restriction(node, schema)
    if isinstance(node, Not):
        check_filter(node.child, schema)
        return node
    for child in node.children:
        check_filter(child, schema)
    return node


# Compiled filters kept: callers repeat theirs (a dashboard's, a client's), the
# trees are immutable, and parsing costs more than a fast search's engine pass.
COMPILED_FILTERS_KEPT = 512


@lru_cache(maxsize=COMPILED_FILTERS_KEPT)
def compile_filter(text: str, schema: Schema) -> Node | None:
    """Parse and type-check in one step (a filter that fails is not kept)."""
    return check_filter(parse_filter(text), schema)


# --- evaluation -----------------------------------------------------------------


def _values_at(record: Any, path: Sequence[str]) -> list[Any]:
    """Every value at the path, fanning out through lists."""
    if not path:
        return list(record) if isinstance(record, list) else [record]
    if isinstance(record, list):
        return [found for item in record for found in _values_at(item, path)]
    if isinstance(record, Mapping) and path[0] in record:
        return _values_at(record[path[0]], path[1:])
    return []


def _compare(actual: Any, op: str, expected: Literal, spec: FieldSpec | None) -> bool:
    if isinstance(actual, datetime) and isinstance(expected, str):
        expected_value: Any = parse_timestamp(expected)
    elif spec is not None and spec.type is FieldType.ENUM and isinstance(expected, str):
        expected_value, actual = expected.upper(), str(actual).upper()
    else:
        expected_value = expected
    if isinstance(actual, bool) != isinstance(expected_value, bool):
        return False
    if isinstance(actual, int | float) and not isinstance(actual, bool):
        if not isinstance(expected_value, float) or math.isnan(expected_value):
            return False
        actual = float(actual)
    elif type(actual) is not type(expected_value) and not (
        isinstance(actual, datetime) and isinstance(expected_value, datetime)
    ):
        return False
    if op == "=":
        return bool(actual == expected_value)
    if op == "!=":
        return bool(actual != expected_value)
    try:
        if op == "<":
            return bool(actual < expected_value)
        if op == "<=":
            return bool(actual <= expected_value)
        if op == ">":
            return bool(actual > expected_value)
        return bool(actual >= expected_value)
    except TypeError:
        return False


def _has(record: Mapping[str, Any], node: Restriction) -> bool:
    if isinstance(node.value, Star):
        return bool(_values_at(record, node.path))
    *parent, last = node.path
    for container in _values_at(record, parent) if parent else [record]:
        if isinstance(container, Mapping) and last in container:
            value = container[last]
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, str) and isinstance(node.value, str):
                    if node.value.lower() in item.lower():
                        return True
                elif _compare(item, "=", node.value, None):
                    return True
            if isinstance(value, Mapping) and str(node.value) in value:
                return True
    return False


def matches(node: Node | None, record: Mapping[str, Any], schema: Schema) -> bool:
    """Whether a record (nested dicts and lists of plain values) satisfies the filter."""
    if node is None:
        return True
    if isinstance(node, And):
        return all(matches(child, record, schema) for child in node.children)
    if isinstance(node, Or):
        return any(matches(child, record, schema) for child in node.children)
    if isinstance(node, Not):
        return not matches(node.child, record, schema)
    if node.op == ":":
        return _has(record, node)
    spec = schema.lookup(node.path)
    return any(_compare(v, node.op, node.value, spec) for v in _values_at(record, node.path))
