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


@pytest.mark.parametrize(
    ("input_len", "output_len", "prompts", "total_in", "total_out"),
    [  # "Total input tokens" / "Total generated tokens" of sgl-cookbook DeepSeek-R1.md's runs
        (1000, 1000, 10, 6101, 4210),
        (1000, 1000, 80, 39668, 40725),
        (1000, 8000, 320, 158939, 1300705),
        (8000, 1000, 80, 300020, 41589),
        (8000, 1000, 320, 1273893, 169680),
    ],
)
def test_bench_serving_random_lengths_are_a_published_runs_own(
    input_len: int, output_len: int, prompts: int, total_in: int, total_out: int
) -> None:
    inputs, outputs = _workload.bench_serving_random_lengths(input_len, output_len, prompts)
    assert (int(inputs.sum()), int(outputs.sum())) == (total_in, total_out)
    assert inputs.min() >= 1 and inputs.max() <= input_len and outputs.max() <= output_len


def test_bench_serving_random_lengths_raise_an_empty_output_to_one_token() -> None:
    # The 500-prompt draw holds one output of 0 tokens (the page totals 252,162 generated).
    _, outputs = _workload.bench_serving_random_lengths(1000, 1000, 500)
    assert outputs.min() == 1 and int(outputs.sum()) == 252162 + 1
    narrow, _ = _workload.bench_serving_random_lengths(1000, 1000, 200, range_ratio=0.8)
    assert narrow.min() >= 800
    with pytest.raises(ValueError, match="range_ratio"):
        _workload.bench_serving_random_lengths(1000, 1000, 10, range_ratio=1.5)
