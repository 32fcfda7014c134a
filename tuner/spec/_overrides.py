"""Command-line overrides of a loaded spec (``--backend``, ``--search``, ``--max-trials``, ...)."""

from __future__ import annotations

from typing import Any

from tuner.spec._load import spec_from_dict
from tuner.spec._study import StudySpec

__all__ = ["override"]

# Backend fields that carry over when the kind changes (the simulated GPU and the GPU count).
_PORTABLE = ("gpu", "gpus")


def override(
    spec: StudySpec,
    *,
    backend: str | None = None,
    algorithm: str | None = None,
    max_trials: int | None = None,
    seed: int | None = None,
) -> StudySpec:
    """A copy of ``spec`` with the given settings replaced, validated again.

    Raises:
        SpecError: the result is not a valid spec (e.g. a backend kind that needs more fields).
    """
    data: dict[str, Any] = spec.model_dump(mode="json", exclude_unset=False)
    if backend is not None and backend != spec.backend.kind:
        old = data["backend"]
        data["backend"] = {"kind": backend, **{k: old[k] for k in _PORTABLE if k in old}}
        if backend in ("local", "ome"):
            data["backend"].pop("gpu", None)
    search = data["search"]
    if algorithm is not None:
        search["algorithm"] = algorithm
        if algorithm == "grid":
            search["max_trials"] = None
    if max_trials is not None:
        search["max_trials"] = max_trials
    if seed is not None:
        search["seed"] = seed
    return spec_from_dict(data, source="spec with command-line overrides")
