"""Constraint expressions over flag values, such as ``tp_size * dp_size <= gpus``.

Parsed with :mod:`ast` and evaluated over a whitelist of node types (numbers, names, arithmetic,
comparisons, ``and``/``or``/``not``), so a spec can never run code.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Expression"]

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


class Expression:
    """A parsed, checked constraint.

    Raises:
        ValueError: on syntax the whitelist does not allow.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self._tree = ast.parse(text, mode="eval").body
        except SyntaxError as e:
            raise ValueError(f"'{text}' is not a valid expression: {e.msg}") from e
        self.names = frozenset(self._names(self._tree))

    def _names(self, node: ast.AST) -> list[str]:
        if isinstance(node, ast.Name):
            return [node.id]
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool | int | float | str):
                return []
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self._names(node.left) + self._names(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
            return self._names(node.operand)
        elif isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            return [n for part in [node.left, *node.comparators] for n in self._names(part)]
        elif isinstance(node, ast.BoolOp):
            return [n for value in node.values for n in self._names(value)]
        raise ValueError(
            f"'{self.text}' uses '{ast.unparse(node)}', which constraints do not allow; "
            "use names, numbers, + - * / // %, comparisons, and, or, not"
        )

    def __call__(self, values: Mapping[str, object]) -> bool:
        """Whether ``values`` satisfy the constraint (a missing name raises KeyError)."""
        return bool(self._eval(self._tree, values))

    def _eval(self, node: ast.AST, values: Mapping[str, object]) -> Any:
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](
                self._eval(node.left, values), self._eval(node.right, values)
            )
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, values)
            return (not operand) if isinstance(node.op, ast.Not) else -operand
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, values)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self._eval(right_node, values)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        assert isinstance(node, ast.BoolOp)
        results = (self._eval(value, values) for value in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
