"""Tests of twin._workload and twin._stats: genai-bench scenarios and metric shapes."""

from __future__ import annotations

import numpy as np
import pytest

from twin import _stats, _workload


def test_scenarios_sample_like_genai_bench() -> None:
    rng = np.random.default_rng(0)
    inputs, outputs = _workload.sample_lengths("D(100,20)", 5, rng)
    assert inputs.tolist() == [100] * 5 and outputs.tolist() == [20] * 5
    inputs, outputs = _workload.sample_lengths("N(480,240)/(300,150)", 4000, rng)
    assert inputs.min() >= 1 and outputs.min() >= 2
    assert abs(inputs.mean() - 480) < 20 and abs(outputs.mean() - 300) < 15
    inputs, outputs = _workload.sample_lengths("U(10,20)/(30,40)", 1000, rng)
    assert 10 <= inputs.min() and inputs.max() < 20 and 30 <= outputs.min() < outputs.max() < 40
    inputs, _ = _workload.sample_lengths("U(50,60)", 1000, rng)
    assert inputs.min() >= 1 and inputs.max() < 50


@pytest.mark.parametrize("bad", ["D(1)", "X(1,2)", "N(1,2)", "D(a,b)"])
def test_bad_scenario(bad: str) -> None:
    with pytest.raises(ValueError, match="scenario"):
        _workload.sample_lengths(bad, 1, np.random.default_rng(0))


def test_aggregate_definitions() -> None:
    metrics = _stats.aggregate(
        scenario="D(10,5)",
        concurrency=2,
        duration=2.0,
        ttft=np.array([0.1, 0.3]),
        e2e=np.array([0.5, 0.7]),
        num_input=np.array([10.0, 10.0]),
        num_output=np.array([5.0, 5.0]),
        error_codes={500: 2},
    )
    assert metrics["num_requests"] == 4 and metrics["num_error_requests"] == 2
    assert metrics["error_rate"] == 0.5
    assert metrics["mean_output_throughput_tokens_per_s"] == 5.0
    assert metrics["requests_per_second"] == 1.0
    stats = metrics["stats"]
    assert isinstance(stats, dict)
    assert stats["tpot"]["mean"] == pytest.approx(0.1)  # (0.5 - 0.1) / 4
    assert set(stats["ttft"]) == {
        "min",
        "max",
        "mean",
        "stddev",
        "sum",
        "p25",
        "p50",
        "p75",
        "p90",
        "p95",
        "p99",
    }
    for key in (
        "ttft",
        "tpot",
        "e2e_latency",
        "output_latency",
        "num_input_tokens",
        "num_output_tokens",
    ):
        assert key in stats
