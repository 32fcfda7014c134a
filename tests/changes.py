"""Test data with a few fields changed, named ``parent__child`` (keyword arguments cannot hold
dots)."""

from __future__ import annotations

import copy
from typing import Any


def changed(data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with each ``a__b__c=value`` set (parents made as needed)."""
    out = copy.deepcopy(data)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out
