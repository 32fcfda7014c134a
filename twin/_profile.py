"""Fact profiles: measured corrections of the facts that were fitted by hand.

A profile multiplies some of the ``calibrated=True`` facts of ``twin._facts.FACTS`` by a
factor fitted to trials measured on a real backend (``autotuner calibrate`` writes one). It is
active inside :func:`using_profile`, through a context variable: studies that run in threads
of one process each see their own profile, and the facts outside any profile never change.
The profile must be active when a configuration's performance model is built (the model reads
its facts once, at construction).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["Profile", "active_factor", "load_profile", "using_profile"]

_KEYS = ("gpu", "model", "factors", "fitted_on", "error_before", "error_after")

_ACTIVE: contextvars.ContextVar[Profile | None] = contextvars.ContextVar(
    "twin_fact_profile", default=None
)


@dataclasses.dataclass(frozen=True)
class Profile:
    """Multiplicative corrections of calibrated facts, and where they come from.

    Attributes:
        FACTOR_RANGE: The factors allowed, ``(low, high)``: one outside is a fit gone wrong
            or a typo (0.75 written as 75), not a correction; the hand-fitted facts are within
            a factor of a few of every published anchor.
        factors: Fact name -> factor (each name one of :meth:`calibrated_facts`).
        gpu: GPU the factors were fitted on (informative; the twin does not enforce it).
        model: Model the factors were fitted on (informative).
        fitted_on: What the fit used (studies, levels), as written by the fitter.
        error_before: Prediction error per metric before the fit.
        error_after: Prediction error per metric with the factors.
    """

    FACTOR_RANGE: ClassVar[tuple[float, float]] = (0.1, 10.0)

    factors: Mapping[str, float]
    gpu: str | None = None
    model: str | None = None
    fitted_on: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    error_before: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    error_after: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # A checked copy (a plain dict: profiles may travel to other processes by pickle).
        object.__setattr__(self, "factors", _checked(self.factors))

    @staticmethod
    def calibrated_facts() -> tuple[str, ...]:
        """The names of the facts a profile may scale (``calibrated=True``), sorted."""
        from twin._facts import FACTS  # _facts imports this module

        return tuple(sorted(name for name, f in FACTS.items() if f.calibrated))

    @classmethod
    def from_dict(cls, data: object, *, source: str = "profile") -> Profile:
        """Builds a profile from parsed YAML or JSON.

        Args:
            data: A mapping with ``factors`` and optionally the other attributes' keys.
            source: Where the data comes from, for messages.

        Returns:
            The validated profile.

        Raises:
            ValueError: A key is unknown or a value invalid; the message names it.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: give a mapping with 'factors' (and gpu, model, ...)")
        if unknown := sorted(set(data) - set(_KEYS)):
            raise ValueError(f"{source}: unknown key {unknown[0]!r}; keys are {', '.join(_KEYS)}")
        if "factors" not in data:
            raise ValueError(f"{source}: 'factors' is missing, e.g. factors: {{eta_mem: 1.1}}")
        for key in ("gpu", "model"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ValueError(f"{source}: {key}: give a name, not {data[key]!r}")
        for key in ("fitted_on", "error_before", "error_after"):
            if not isinstance(data.get(key) or {}, Mapping):
                raise ValueError(f"{source}: {key}: give a mapping")
        try:
            return cls(
                factors=data["factors"],
                gpu=data.get("gpu"),
                model=data.get("model"),
                fitted_on=data.get("fitted_on") or {},
                error_before=data.get("error_before") or {},
                error_after=data.get("error_after") or {},
            )
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain data, in the file's layout."""
        return {
            "gpu": self.gpu,
            "model": self.model,
            "factors": dict(self.factors),
            "fitted_on": dict(self.fitted_on),
            "error_before": dict(self.error_before),
            "error_after": dict(self.error_after),
        }


def _checked(factors: object) -> dict[str, float]:
    if not isinstance(factors, Mapping):
        raise ValueError("factors: give a mapping of fact name to factor, e.g. {eta_mem: 1.1}")
    calibrated = Profile.calibrated_facts()
    out: dict[str, float] = {}
    for name, factor in factors.items():
        if name not in calibrated:
            from twin._facts import FACTS

            what = "not a calibrated fact" if name in FACTS else "not a fact"
            raise ValueError(
                f"factors.{name}: {what} of the twin; a profile may scale only "
                f"{', '.join(calibrated)}"
            )
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            raise ValueError(f"factors.{name}: {factor!r} is not a number")
        low, high = Profile.FACTOR_RANGE
        if not (math.isfinite(factor) and low <= factor <= high):
            raise ValueError(
                f"factors.{name}: {factor!r} is outside [{low:g}, {high:g}]; a factor "
                "multiplies the fact (1.0 leaves it unchanged)"
            )
        out[name] = float(factor)
    return out


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Reads a profile file (YAML or JSON).

    Args:
        path: The file.

    Returns:
        The validated profile.

    Raises:
        ValueError: The file cannot be read or parsed, or a field is invalid (the message
            names the file and the field).
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"cannot read the profile {path}: {e}") from e
    return Profile.from_dict(data, source=str(path))


@contextlib.contextmanager
def using_profile(profile: Profile | None) -> Iterator[Profile | None]:
    """Makes ``profile`` the active one in this context (thread, task) until the block ends.

    Args:
        profile: The profile; None runs the block with the facts as they are.

    Yields:
        The profile.
    """
    token = _ACTIVE.set(profile)
    try:
        yield profile
    finally:
        _ACTIVE.reset(token)


def active_factor(name: str) -> float:
    """The active profile's factor of one fact (1.0 without a profile or a factor)."""
    profile = _ACTIVE.get()
    return 1.0 if profile is None else profile.factors.get(name, 1.0)
