"""``objective.metric: cost_per_mtok`` end to end: an estimate study ranks configs by what
their GPUs cost per million output tokens, not by their throughput."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuner import objective, run_study
from tuner.spec import spec_from_dict
from tuner.store import open_store

pytestmark = pytest.mark.timeout(300)


def test_the_cheapest_config_per_token_wins(ray_pool: int, tmp_path: Path) -> None:
    spec = spec_from_dict({
        "name": "cost",
        "model": {"name": "Llama-3.1-8B-Instruct"},
        "backend": {"kind": "estimate", "gpu": "H100", "gpus": 4},
        "space": {"tp_size": [1, 4], "max_running_requests": [8, 64]},
        "workload": {"scenarios": ["D(512,128)"], "concurrency": [8, 64],
                     "max_requests_per_level": 40},
        "objective": {"metric": "cost_per_mtok", "usd_per_gpu_hour": 2.5,
                      "slo": {"tpot_p99_ms": 80, "ttft_p99_ms": 5000}},
        "search": {"algorithm": "grid", "prescreen": None, "early_stopping": False,
                   "confirm": {"top_k": 0}},
    })
    result = run_study(spec, store=open_store(tmp_path / "s.db"))
    scored = [t for t in result.trials if t.score is not None]
    assert len(scored) >= 3
    for trial in scored:
        level = objective.best_level(trial.levels, spec.objective)
        assert level is not None
        expected = 2.5 * trial.gpus / (level.output_throughput * 3600) * 1e6
        assert trial.score == pytest.approx(expected)
    assert result.best is not None
    assert result.best.score == min(t.score for t in scored)  # type: ignore[type-var]
    # the fastest config is not the cheapest per token: four GPUs do not serve four times more
    fastest = max(scored, key=lambda t: objective.best_level(
        t.levels, spec.objective).output_throughput)  # type: ignore[union-attr]
    assert fastest.gpus == 4 and result.best.gpus == 1
