"""The HTTP server in scaled time agrees with real time and with the estimator.

Quickstart workload: Llama-3.1-8B-Instruct on H100, D(256,128), concurrency 4 and 16,
40 requests per level, measured by a lean streaming client.
"""

from __future__ import annotations

import pytest

import twin
from tests.twin import support

MODEL = "Llama-3.1-8B-Instruct"
LEVELS = (4, 16)


def _measure(time_scale: float) -> dict[int, dict[str, float]]:
    with support.running_twin(
        "--model-path", MODEL, "--time-scale", str(time_scale), "--log-level", "warning"
    ) as url:
        return {
            c: _summary(
                support.closed_loop(
                    url,
                    concurrency=c,
                    requests=40,
                    input_len=256,
                    output_len=128,
                    time_scale=time_scale,
                )
            )
            for c in LEVELS
        }


def _summary(metrics: dict[str, object]) -> dict[str, float]:
    stats = metrics["stats"]
    assert isinstance(stats, dict)
    return {
        "throughput": float(metrics["mean_output_throughput_tokens_per_s"]),  # type: ignore[arg-type]
        "ttft": stats["ttft"]["mean"],
        "tpot": stats["tpot"]["mean"],
    }


def _disagreements(
    measured: dict[int, dict[str, float]], reference: dict[int, dict[str, float]]
) -> list[str]:
    return [
        f"concurrency {c} {key}: {value:.5g} vs {reference[c][key]:.5g}"
        for c in LEVELS
        for key, value in measured[c].items()
        if value != pytest.approx(reference[c][key], rel=0.10)
    ]


@pytest.fixture(scope="module")
def real_time() -> dict[int, dict[str, float]]:
    return _measure(1.0)


def test_time_scale_4_agrees_with_real_time(real_time: dict[int, dict[str, float]]) -> None:
    # Other processes on a shared 2-core machine can stall a 4x-scaled run (every wall
    # millisecond is 4 simulated ones), so one disturbed measurement is retried.
    problems = _disagreements(_measure(4.0), real_time)
    if problems:
        problems = _disagreements(_measure(4.0), real_time)
    assert not problems, problems


def test_server_agrees_with_estimator(real_time: dict[int, dict[str, float]]) -> None:
    estimated = {
        c: _summary(
            twin.estimate(
                {"model_path": MODEL}, scenario="D(256,128)", concurrency=c, max_requests=40
            )["aggregated_metrics"]
        )
        for c in LEVELS
    }
    problems = _disagreements(real_time, estimated)
    assert not problems, problems
