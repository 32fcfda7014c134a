"""A bounded Nelder–Mead minimiser (scipy is not a dependency; a few dimensions suffice)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Minimum", "nelder_mead"]


@dataclass(frozen=True)
class Minimum:
    """The best point found, its value, and how many evaluations it took."""

    x: np.ndarray
    value: float
    evaluations: int


def nelder_mead(
    f: Callable[[np.ndarray], float],
    x0: np.ndarray,
    *,
    step: float,
    bounds: tuple[float, float],
    max_evals: int,
    tolerance: float = 1e-4,
) -> Minimum:
    """Minimises ``f`` from ``x0`` with the Nelder–Mead simplex, inside a box.

    Points are clipped into ``bounds`` on every coordinate, so ``f`` is never evaluated
    outside it. It stops after ``max_evals`` evaluations, or once the simplex's values
    differ by less than ``tolerance``. ``f`` need not be smooth (a median of errors is not).

    Args:
        f: The function.
        x0: The start.
        step: Size of the first simplex along each coordinate.
        bounds: ``(low, high)`` of every coordinate.
        max_evals: Evaluations at most.
        tolerance: Spread of the simplex's values at which it has converged.
    """
    low, high = bounds
    evals = 0

    def value(x: np.ndarray) -> float:
        nonlocal evals
        evals += 1
        return f(x)

    start = np.clip(np.asarray(x0, dtype=float), low, high)
    # Step inward from a coordinate already at its upper bound.
    points = [start] + [
        np.clip(
            start + np.eye(len(start))[i] * (step if start[i] + step <= high else -step), low, high
        )
        for i in range(len(start))
    ]
    values = [value(p) for p in points]
    while evals < max_evals:
        order = np.argsort(values)
        points = [points[i] for i in order]
        values = [values[i] for i in order]
        if values[-1] - values[0] < tolerance:
            break
        centroid = np.mean(points[:-1], axis=0)
        worst = points[-1]
        reflected = np.clip(centroid + (centroid - worst), low, high)
        fr = value(reflected)
        if fr < values[0]:
            expanded = np.clip(centroid + 2.0 * (centroid - worst), low, high)
            fe = value(expanded)
            points[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            points[-1], values[-1] = reflected, fr
        else:
            inside = fr >= values[-1]
            contracted = centroid + 0.5 * ((worst if inside else reflected) - centroid)
            fc = value(contracted)
            if fc < min(fr, values[-1]):
                points[-1], values[-1] = contracted, fc
            else:  # shrink toward the best point
                for i in range(1, len(points)):
                    points[i] = points[0] + 0.5 * (points[i] - points[0])
                    values[i] = value(points[i])
    best = int(np.argmin(values))
    return Minimum(points[best], float(values[best]), evals)
