"""Aggregation of per-request timings into genai-bench 0.0.5's ``aggregated_metrics`` shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

_PERCENTILES = (25, 50, 75, 90, 95, 99)
_STAT_KEYS = ("min", "max", "mean", "stddev", "sum", "p25", "p50", "p75", "p90", "p95", "p99")
_FIELDS = (
    "ttft",
    "tpot",
    "e2e_latency",
    "output_latency",
    "output_inference_speed",
    "num_input_tokens",
    "num_output_tokens",
    "num_reasoning_tokens",
    "total_tokens",
    "input_throughput",
    "output_throughput",
    "audio_throughput",
)


def _stat(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return dict.fromkeys(_STAT_KEYS)
    p = np.percentile(values, _PERCENTILES)
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "stddev": float(values.std()),
        "sum": float(values.sum()),
        **{f"p{q}": float(v) for q, v in zip(_PERCENTILES, p, strict=True)},
    }


def aggregate(
    *,
    scenario: str,
    concurrency: int,
    duration: float,
    ttft: np.ndarray,
    e2e: np.ndarray,
    num_input: np.ndarray,
    num_output: np.ndarray,
    error_codes: Mapping[int, int],
) -> dict[str, Any]:
    """Builds genai-bench's ``aggregated_metrics`` from per-request results.

    Definitions follow genai-bench's request and aggregated metrics collectors: TPOT is
    ``(e2e - ttft) / (out - 1)``, left out when ``out <= 1`` or the output latency is under
    1 ms; throughputs are token sums over ``duration``. Unlike genai-bench 0.0.5 (whose
    ``error_rate`` is always 0), ``error_rate`` is ``num_error_requests / num_requests``.

    Args:
        scenario: Traffic scenario string.
        concurrency: Value of ``num_concurrency``.
        duration: Run duration in seconds.
        ttft: Time to first token of each completed request, seconds.
        e2e: End-to-end latency of each completed request, seconds.
        num_input: Prompt tokens of each completed request.
        num_output: Output tokens of each completed request.
        error_codes: HTTP status code -> number of failed requests.

    Returns:
        The ``aggregated_metrics`` dictionary.
    """
    output_latency = e2e - ttft
    keep = (num_output > 1) & (output_latency >= 0.001)
    tpot = output_latency[keep] / (num_output[keep] - 1)
    total = num_input + num_output
    with np.errstate(divide="ignore", invalid="ignore"):
        input_tput = np.where(ttft > 0, num_input / ttft, 0.0)
        output_tput = np.where(output_latency > 0, (num_output - 1) / output_latency, 0.0)
    stats = {
        "ttft": _stat(ttft),
        "tpot": _stat(tpot),
        "e2e_latency": _stat(e2e),
        "output_latency": _stat(output_latency),
        "output_inference_speed": _stat(1.0 / tpot),
        "num_input_tokens": _stat(num_input.astype(float)),
        "num_output_tokens": _stat(num_output.astype(float)),
        "num_reasoning_tokens": _stat(np.zeros(len(e2e))),
        "total_tokens": _stat(total * 1.0),
        "input_throughput": _stat(input_tput),
        "output_throughput": _stat(output_tput[keep]),
        "audio_throughput": dict.fromkeys(_STAT_KEYS),
    }
    completed = int(len(e2e))
    errors = int(sum(error_codes.values()))
    requests = completed + errors
    span = duration if duration > 0 else float("nan")
    return {
        "scenario": scenario,
        "num_concurrency": concurrency,
        "batch_size": 1,
        "iteration_type": "num_concurrency",
        "run_duration": duration,
        "mean_output_throughput_tokens_per_s": float(num_output.sum()) / span
        if completed
        else 0.0,
        "mean_input_throughput_tokens_per_s": float(num_input.sum()) / span if completed else 0.0,
        "mean_total_tokens_throughput_tokens_per_s": float(total.sum()) / span
        if completed
        else 0.0,
        "requests_per_second": completed / span if completed else 0.0,
        "error_codes_frequency": {int(k): int(v) for k, v in error_codes.items()},
        "error_rate": errors / requests if requests else 0.0,
        "num_error_requests": errors,
        "num_completed_requests": completed,
        "num_requests": requests,
        "stats": {name: stats[name] for name in _FIELDS},
    }
