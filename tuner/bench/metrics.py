"""``LevelMetrics``: what one concurrency level of one trial measured, in real-time units."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["LATENCY_METRICS", "LevelMetrics", "THROUGHPUT_METRICS"]

_STATS = {"ttft": "ttft", "tpot": "tpot", "e2e": "e2e_latency"}
_PCTS = ("mean", "p50", "p90", "p95", "p99")
LATENCY_METRICS = tuple(f"{m}_{p}_ms" for m in _STATS for p in _PCTS)
THROUGHPUT_METRICS = (
    "output_throughput",
    "input_throughput",
    "total_throughput",
    "requests_per_second",
)


class LevelMetrics(BaseModel):
    """One level's aggregate: throughputs per second, latencies in milliseconds.

    Throughputs are server-wide (tokens or requests per second over the level); latency
    percentiles cover successful requests only, as genai-bench computes them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenario: str
    concurrency: int
    num_requests: int
    num_completed: int
    num_errors: int
    error_rate: float
    duration_s: float
    output_throughput: float
    input_throughput: float
    total_throughput: float
    requests_per_second: float
    ttft_mean_ms: float
    ttft_p50_ms: float
    ttft_p90_ms: float
    ttft_p95_ms: float
    ttft_p99_ms: float
    tpot_mean_ms: float
    tpot_p50_ms: float
    tpot_p90_ms: float
    tpot_p95_ms: float
    tpot_p99_ms: float
    e2e_mean_ms: float
    e2e_p50_ms: float
    e2e_p90_ms: float
    e2e_p95_ms: float
    e2e_p99_ms: float

    @classmethod
    def from_genai_bench(
        cls, aggregated: dict[str, Any], *, time_unit: str = "s", time_scale: float = 1.0
    ) -> LevelMetrics:
        """Read genai-bench's ``aggregated_metrics`` (or the twin estimator's, same shape).

        ``time_scale`` undoes a twin's ``--time-scale``: latencies are multiplied by it and
        throughputs divided. The error rate is computed from the counts, because
        genai-bench's own ``error_rate`` field is always 0.
        """
        to_ms = (1000.0 if time_unit == "s" else 1.0) * time_scale
        stats = aggregated.get("stats") or {}
        values: dict[str, Any] = {}
        for short, key in _STATS.items():
            stat = stats.get(key) or {}
            for pct in _PCTS:
                value = stat.get(pct)
                values[f"{short}_{pct}_ms"] = float(value) * to_ms if value is not None else 0.0
        requests = int(aggregated.get("num_requests") or 0)
        errors = int(aggregated.get("num_error_requests") or 0)
        return cls(
            scenario=str(aggregated["scenario"]),
            concurrency=int(aggregated.get("num_concurrency") or 0),
            num_requests=requests,
            num_completed=int(aggregated.get("num_completed_requests") or 0),
            num_errors=errors,
            error_rate=errors / requests if requests else 1.0,
            duration_s=float(aggregated.get("run_duration") or 0.0) * time_scale,
            output_throughput=_rate(aggregated, "mean_output_throughput_tokens_per_s", time_scale),
            input_throughput=_rate(aggregated, "mean_input_throughput_tokens_per_s", time_scale),
            total_throughput=_rate(
                aggregated, "mean_total_tokens_throughput_tokens_per_s", time_scale
            ),
            requests_per_second=_rate(aggregated, "requests_per_second", time_scale),
            **values,
        )


def _rate(aggregated: dict[str, Any], key: str, time_scale: float) -> float:
    return float(aggregated.get(key) or 0.0) / time_scale
