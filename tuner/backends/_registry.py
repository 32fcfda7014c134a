"""The backend registry: ``backend.kind`` -> implementation class."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tuner.exceptions import SpecError

if TYPE_CHECKING:
    from tuner.backends.base import Backend
    from tuner.spec import StudySpec

__all__ = ["BACKENDS", "make", "register"]

BACKENDS: dict[str, type[Backend]] = {}
_B = TypeVar("_B", bound="type[Backend]")


def register(kind: str) -> Callable[[_B], _B]:
    """Class decorator: make the class the implementation of ``backend.kind == kind``."""

    def add(cls: _B) -> _B:
        cls.NAME = kind
        BACKENDS[kind] = cls
        return cls

    return add


def make(spec: StudySpec, *, study_id: str, workdir: Path) -> Backend:
    """The backend a spec asks for.

    Raises:
        SpecError: no backend implements ``spec.backend.kind``.
    """
    kind = spec.backend.kind
    if kind not in BACKENDS:
        raise SpecError(
            f"backend.kind: '{kind}' has no implementation; "
            f"use one of {', '.join(sorted(BACKENDS))}"
        )
    return BACKENDS[kind](spec, study_id=study_id, workdir=workdir)
