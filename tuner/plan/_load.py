"""Reading a plan file into a :class:`PlanSpec`, every bad field named in one error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuner.plan._spec import PlanSpec
from tuner.spec._document import read_document, validated

__all__ = ["load_plan", "plan_from_dict"]


def load_plan(path: str | Path) -> PlanSpec:
    """Reads a plan spec from a YAML or JSON file.

    Raises:
        SpecError: the file is missing or unreadable, or the plan is invalid.
    """
    return plan_from_dict(read_document(Path(path), "a plan"), source=str(path))


def plan_from_dict(data: Any, *, source: str = "plan") -> PlanSpec:
    """Validates plain data as a plan spec.

    Raises:
        SpecError: listing every bad field as ``field: reason``.
    """
    return validated(PlanSpec, data, source, "a plan")
