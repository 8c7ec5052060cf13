"""What a PromQL expression's result carries, for checking alert annotations.

`result_labels` infers the labels of an expression's result series from its
AST: an aggregation keeps its `by` labels, histogram_quantile drops `le`, a
binary operation between vectors keeps its left side's (one-to-one, `and`,
`unless`, and comparisons filter the left side), range functions keep their
argument's. None means "whatever the scraped series carry" (a bare
selector, or `without`), which the tests cannot narrow.
"""

from __future__ import annotations

import promql_parser

Labels = frozenset[str] | None


def _is_scalar(node: promql_parser.Expr) -> bool:
    if isinstance(node, promql_parser.ParenExpr):
        return _is_scalar(node.expr)
    return isinstance(node, promql_parser.NumberLiteral)


def result_labels(node: promql_parser.Expr) -> Labels:
    """The labels every result series has, or None when not narrowed."""
    if isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        return result_labels(node.expr)
    if isinstance(node, promql_parser.AggregateExpr):
        modifier = node.modifier
        if modifier is not None and modifier.type == promql_parser.AggModifierType.By:
            return frozenset(modifier.labels)
        return frozenset() if modifier is None else None
    if isinstance(node, promql_parser.BinaryExpr):
        side = node.rhs if _is_scalar(node.lhs) else node.lhs
        return result_labels(side)
    if isinstance(node, promql_parser.Call):
        vectors = [
            arg for arg in node.args if isinstance(arg, promql_parser.Expr) and not _is_scalar(arg)
        ]
        if not vectors:
            return frozenset()
        found = result_labels(vectors[0])
        if node.func.name == "histogram_quantile" and found is not None:
            return found - {"le"}
        return found
    return None


def comparisons(node: promql_parser.Expr) -> list[tuple[promql_parser.Expr, str, float]]:
    """Every `<expression> <comparison> <number>` in the tree, with its operator."""
    found: list[tuple[promql_parser.Expr, str, float]] = []

    def visit(child: promql_parser.Expr) -> bool:
        if isinstance(child, promql_parser.BinaryExpr) and isinstance(
            child.rhs, promql_parser.NumberLiteral
        ):
            operator = str(child.op)
            if operator in {">", ">=", "<", "<=", "==", "!="}:
                found.append((child.lhs, operator, child.rhs.val))
        return True

    promql_parser.walk(node, visit)
    return found
