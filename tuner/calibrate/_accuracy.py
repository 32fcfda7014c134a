"""How far predictions are from measurements: relative errors per metric and their summary."""

from __future__ import annotations

import numpy as np

from tuner.bench.metrics import LevelMetrics

__all__ = ["FITTED_METRICS", "relative_errors", "score", "summary"]

# The metrics a calibration matches: the mean time per output token (decode speed), the mean
# time to first token (prefill and queueing) and the output throughput (both, under load).
FITTED_METRICS = ("tpot_mean_ms", "ttft_mean_ms", "output_throughput")


def relative_errors(
    predicted: list[LevelMetrics], measured: list[LevelMetrics]
) -> dict[str, np.ndarray]:
    """``|predicted / measured - 1|`` of each fitted metric, one value per level.

    A level whose measured value is zero (no request finished, a scenario without decode)
    counts as a miss of 100 % for that metric rather than an infinite one.
    """
    out = {}
    for metric in FITTED_METRICS:
        pred = np.array([getattr(p, metric) for p in predicted], dtype=float)
        meas = np.array([getattr(m, metric) for m in measured], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            error = np.abs(pred / meas - 1.0)
        out[metric] = np.where(meas > 0, error, 1.0)
    return out


def score(errors: dict[str, np.ndarray]) -> float:
    """What the fit minimises: the mean over the metrics of each one's median error."""
    return float(np.mean([np.median(e) for e in errors.values()]))


def summary(errors: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per metric, the median and 90th percentile of the absolute error, in percent."""
    return {
        metric: {
            "median_pct": round(float(np.percentile(e, 50)) * 100.0, 2),
            "p90_pct": round(float(np.percentile(e, 90)) * 100.0, 2),
        }
        for metric, e in errors.items()
    }
