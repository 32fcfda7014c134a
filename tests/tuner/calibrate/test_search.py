"""The bounded Nelder–Mead minimiser the calibration searches factors with."""

from __future__ import annotations

import numpy as np

from tuner.calibrate._search import nelder_mead


def test_it_finds_the_minimum_of_a_valley_within_its_budget() -> None:
    target = np.array([0.4, -0.7, 0.1])
    values: list[float] = []

    def f(x: np.ndarray) -> float:
        values.append(float(np.sum(np.abs(x - target))))  # not smooth there, like a median
        return values[-1]

    found = nelder_mead(f, np.zeros(3), step=0.3, bounds=(-2.0, 2.0), max_evals=400)
    assert np.allclose(found.x, target, atol=0.02)
    assert found.value == min(values) and found.evaluations == len(values) <= 400 + 3


def test_it_stays_in_its_box_and_stops_at_its_budget() -> None:
    seen: list[np.ndarray] = []

    def f(x: np.ndarray) -> float:
        seen.append(x.copy())
        return float(-np.sum(x))  # pulls every coordinate to the upper bound

    found = nelder_mead(f, np.zeros(2), step=0.5, bounds=(-1.0, 1.0), max_evals=30)
    assert all(np.all((-1.0 <= x) & (x <= 1.0)) for x in seen)
    assert len(seen) == found.evaluations <= 30 + 2
    assert np.allclose(found.x, [1.0, 1.0], atol=0.05)
