"""Constraint expressions over flag values, such as ``tp_size * dp_size <= gpus``.

Parsed with :mod:`ast` and evaluated over a whitelist of node types (numbers, names, arithmetic,
comparisons, ``and``/``or``/``not``), so a spec can never run code. Expressions are small by
rule (:data:`MAX_CHARS`, :data:`MAX_NODES`, :data:`MAX_DEPTH`), checked before anything
recurses over them, and arithmetic takes numbers only, so one can neither exhaust the stack
nor build a huge string.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from tuner._bounded import first_bound_passed

__all__ = ["MAX_CHARS", "MAX_DEPTH", "MAX_NODES", "Expression", "ExpressionError"]

# Real constraints are one line with a handful of terms; these bounds are 10x what any
# example uses and keep parsing and evaluation well under a millisecond.
MAX_CHARS = 1000
MAX_NODES = 200
MAX_DEPTH = 50

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


class ExpressionError(ValueError):
    """An expression that cannot be evaluated for given values (x / 0, 'a' < 1, a missing
    name)."""


class Expression:
    """A parsed, checked constraint.

    Raises:
        ValueError: on syntax the whitelist does not allow, or an expression over the size
            limits.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        if len(text) > MAX_CHARS:
            raise ValueError(
                f"'{_short(text)}' has {len(text)} characters; an expression may have at most "
                f"{MAX_CHARS}: split it into several constraints"
            )
        try:
            self._tree = ast.parse(text, mode="eval").body
        except SyntaxError as e:
            raise ValueError(f"'{text}' is not a valid expression: {e.msg}") from e
        except (RecursionError, MemoryError) as e:  # nesting the parser itself cannot take
            raise ValueError(f"'{_short(text)}' is nested too deeply; simplify it") from e
        _check_size(self._tree, text)
        self.names = frozenset(self._names(self._tree))

    def _names(self, node: ast.AST) -> list[str]:
        if isinstance(node, ast.Name):
            return [node.id]
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool | int | float | str):
                return []
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            # Strings only compare: 'a' * 50_000_000 would build a 50 MB value.
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and isinstance(side.value, str):
                    raise ValueError(
                        f"'{self.text}' uses the text {side.value!r} in arithmetic; "
                        "text may only be compared, e.g. attention_backend == 'fa3'"
                    )
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
        """Whether ``values`` satisfy the constraint.

        Raises:
            ExpressionError: the expression cannot be evaluated for these values (a division
                by zero, text compared with a number, a missing name).
        """
        return bool(self.value(values))

    def value(self, values: Mapping[str, object]) -> Any:
        """The expression's value for ``values``.

        Raises:
            ExpressionError: as for calling the expression.
        """
        try:
            return self._eval(self._tree, values)
        except KeyError as e:
            raise ExpressionError(f"'{self.text}' names {e.args[0]}, which has no value") from e
        except (ArithmeticError, TypeError) as e:
            shown = ", ".join(f"{k}={values[k]!r}" for k in sorted(self.names) if k in values)
            raise ExpressionError(
                f"'{self.text}' cannot be evaluated for {shown or 'these values'}: {e}; "
                "guard it (e.g. tp_size > 0 and x / tp_size <= 8) or compare like with like"
            ) from e

    def _eval(self, node: ast.AST, values: Mapping[str, object]) -> Any:
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BinOp):
            left = self._eval(node.left, values)
            right = self._eval(node.right, values)
            if not (_is_number(left) and _is_number(right)):  # a flag's value may be text
                raise TypeError(
                    f"arithmetic needs numbers, not {type(left).__name__} and "
                    f"{type(right).__name__}"
                )
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, values)
            if isinstance(node.op, ast.Not):
                return not operand
            if not _is_number(operand):
                raise TypeError(f"'-' needs a number, not {type(operand).__name__}")
            return -operand
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


def _is_number(value: object) -> bool:
    return isinstance(value, int | float)  # bool is an int: True + 1 stays harmless


def _check_size(tree: ast.AST, text: str) -> None:
    """Refuse trees too big or too deep (walked iteratively, never recursively)."""
    # Only expressions count: operators and contexts are part of their parent's term.
    passed = first_bound_passed(
        tree,
        lambda node: (c for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr)),
        max_nodes=MAX_NODES,
        max_depth=MAX_DEPTH,
    )
    if passed == "nodes":
        raise ValueError(
            f"'{_short(text)}' has more than {MAX_NODES} terms; split it into several "
            "constraints"
        )
    if passed == "depth":
        raise ValueError(f"'{_short(text)}' nests deeper than {MAX_DEPTH} levels; simplify it")


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:40]}..."
