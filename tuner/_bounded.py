"""A walk of untrusted nested data that stops at a size or depth bound, without recursion
(so neither a deep tree nor a YAML alias that contains itself can exhaust the stack)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal, TypeVar

__all__ = ["first_bound_passed"]

T = TypeVar("T")


def first_bound_passed(
    root: T, children: Callable[[T], Iterable[T]], *, max_nodes: int, max_depth: int
) -> Literal["nodes", "depth"] | None:
    """Which bound the tree under ``root`` passes first, or None when it stays within both.

    Args:
        root: the top of the tree, at depth 1.
        children: a node's children; visits are counted, so a shared or cyclic child
            counts each time it is reached.
        max_nodes: most visits allowed.
        max_depth: deepest level allowed.
    """
    stack = [(root, 1)]
    visits = 0
    while stack:
        node, depth = stack.pop()
        visits += 1
        if visits > max_nodes:
            return "nodes"
        if depth > max_depth:
            return "depth"
        stack.extend((child, depth + 1) for child in children(node))
    return None
