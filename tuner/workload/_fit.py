"""Fitting a log's traffic: the genai-bench scenario closest to its lengths, and its load."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PERCENTILES", "TOLERANCE", "Fit", "concurrency_percentiles", "fit_scenario",
           "scenario_percentiles"]

# The percentiles a fit is judged on, and the largest relative miss at which a simpler
# scenario is good enough.
PERCENTILES = (10, 25, 50, 75, 90, 99)
TOLERANCE = 0.02
# Draws to take a scenario's percentiles by genai-bench's own sampling.
_DRAWS = 200_000


@dataclass(frozen=True)
class Fit:
    """A scenario and how far its length percentiles are from the log's.

    Attributes:
        scenario: ``D(in,out)``, ``N(mi,si)/(mo,so)`` or ``U(min,max)/(min,max)``.
        error: the largest relative difference over :data:`PERCENTILES` of input and
            output lengths.
        percentiles: ``{"input": [...], "output": [...]}`` of the scenario's lengths.
    """

    scenario: str
    error: float
    percentiles: dict[str, list[float]]


def scenario_percentiles(scenario: str, seed: int = 0) -> dict[str, list[float]]:
    """The :data:`PERCENTILES` of a scenario's input and output lengths, sampled the way
    genai-bench samples them."""
    import twin

    inputs, outputs = twin.sample_lengths(scenario, _DRAWS, np.random.default_rng(seed))
    return {"input": _pct(inputs), "output": _pct(outputs)}


def fit_scenario(
    inputs: Sequence[int] | np.ndarray, outputs: Sequence[int] | np.ndarray
) -> Fit:
    """The simplest scenario (D, then N, then U) whose length percentiles are within
    :data:`TOLERANCE` of the log's; else the closest of them.

    Raises:
        ValueError: no lengths.
    """
    if not len(inputs) or not len(outputs):
        raise ValueError("no request lengths to fit")
    x, y = np.asarray(inputs, dtype=float), np.asarray(outputs, dtype=float)
    observed = {"input": _pct(x), "output": _pct(y)}
    candidates = [
        f"D({round(np.median(x))},{round(np.median(y))})",
        # genai-bench truncates its normal draws to whole tokens: the mean of the draws is
        # about half a token below the scenario's, so ask for half a token more.
        f"N({round(x.mean() + 0.5)},{round(x.std())})/({round(y.mean() + 0.5)},{round(y.std())})",
        f"U({int(x.min())},{int(x.max()) + 1})/({int(y.min())},{int(y.max()) + 1})",
    ]
    fits = []
    for scenario in candidates:
        predicted = scenario_percentiles(scenario)
        error = max(
            abs(p - o) / o
            for side in ("input", "output")
            for p, o in zip(predicted[side], observed[side], strict=True)
        )
        fits.append(Fit(scenario, error, predicted))
        if error <= TOLERANCE:
            return fits[-1]
    return min(fits, key=lambda fit: fit.error)


def concurrency_percentiles(
    starts: Sequence[float], latencies: Sequence[float], points: Sequence[float] = (50, 90, 99)
) -> list[int]:
    """Requests in flight at the given percentiles of time (time-weighted, over the span
    from the first request to the last end), rounded, at least 1."""
    begin = np.asarray(starts, dtype=float)
    finish = begin + np.asarray(latencies, dtype=float)
    times = np.concatenate([begin, finish])
    steps = np.concatenate([np.ones(len(begin)), -np.ones(len(finish))])
    # Ends before starts at the same instant: a request that ends as another starts does
    # not overlap it.
    order = np.lexsort((steps, times))
    times, steps = times[order], steps[order]
    in_flight = np.cumsum(steps)[:-1]
    spans = np.diff(times)
    keep = spans > 0
    in_flight, spans = in_flight[keep], spans[keep]
    if not len(spans):
        return [max(1, len(begin))]
    by_count = np.argsort(in_flight, kind="stable")
    cumulative = np.cumsum(spans[by_count]) / spans.sum()
    levels = []
    for point in points:
        index = min(int(np.searchsorted(cumulative, point / 100)), len(cumulative) - 1)
        levels.append(max(1, int(round(in_flight[by_count][index]))))
    return levels


def _pct(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.percentile(values, PERCENTILES)]
