"""Scoring: SLO checks and goodput over the ladder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tuner import objective
from tuner.bench.metrics import Histogram, LevelMetrics, ServerView
from tuner.exceptions import SpecError
from tuner.prices import default_prices
from tuner.spec import ObjectiveSpec, WorkloadSpec, spec_from_dict


def level(concurrency: int, throughput: float, tpot_p99: float, scenario: str = "D(1,1)",
          errors: int = 0) -> LevelMetrics:
    return LevelMetrics.from_genai_bench({
        "scenario": scenario, "num_concurrency": concurrency, "num_requests": 100,
        "num_error_requests": errors, "num_completed_requests": 100 - errors,
        "mean_output_throughput_tokens_per_s": throughput, "run_duration": 10.0,
        "stats": {"tpot": {"p99": tpot_p99}, "ttft": {"p99": 0.1}},
    })


def test_goodput_is_best_throughput_meeting_every_bound() -> None:
    spec = ObjectiveSpec(slo={"tpot_p99_ms": 50})
    levels = [level(4, 100, 0.02), level(16, 300, 0.04), level(64, 900, 0.09)]
    assert objective.score(levels, spec, gpus=2) == 300
    assert objective.best_level(levels, spec).concurrency == 16  # type: ignore[union-attr]
    assert objective.violations(levels[2], spec) == ["tpot_p99_ms 90 > 50"]
    per_gpu = ObjectiveSpec(slo={"tpot_p99_ms": 50}, per_gpu=True)
    assert objective.score(levels, per_gpu, gpus=2) == 150


def test_errors_break_the_slo_and_nothing_feasible_scores_none() -> None:
    spec = ObjectiveSpec(slo={"tpot_p99_ms": 50})
    assert objective.score([level(4, 100, 0.02, errors=5)], spec, gpus=1) is None
    assert objective.score([level(4, 100, 0.09)], spec, gpus=1) is None


def test_latency_objective_minimises_and_scenarios_average() -> None:
    spec = ObjectiveSpec(metric="tpot_p99_ms", slo={"tpot_p99_ms": 50})
    assert objective.direction(spec) == "min"
    levels = [level(4, 1, 0.02, "D(1,1)"), level(16, 1, 0.04, "D(1,1)"),
              level(4, 1, 0.03, "D(2,2)")]
    assert objective.score(levels, spec, gpus=1) == 25.0


def test_time_scale_is_undone() -> None:
    scaled = LevelMetrics.from_genai_bench(
        {"scenario": "D(1,1)", "num_concurrency": 1, "num_requests": 10,
         "mean_output_throughput_tokens_per_s": 400.0, "stats": {"ttft": {"p99": 0.05}}},
        time_scale=4.0)
    assert scaled.output_throughput == 100.0 and scaled.ttft_p99_ms == 200.0


def test_the_source_decides_whose_figures_score() -> None:
    # genai-bench saw 300 tok/s and a TTFT p99 of 900 ms; the server (4 users, 1 s per
    # request of 100 tokens) served 400 tok/s with every TTFT under 100 ms.
    measured = LevelMetrics.from_genai_bench({
        "scenario": "D(1,1)", "num_concurrency": 4, "num_requests": 100,
        "num_completed_requests": 100, "mean_output_throughput_tokens_per_s": 300,
        "run_duration": 10.0, "stats": {"ttft": {"mean": 0.5, "p99": 0.9}},
    }).with_server(ServerView(
        requests=100, prompt_tokens=100, generation_tokens=10_000,
        ttft=Histogram(bounds=[0.1], counts=[100], count=100, sum=2.0),
        e2e=Histogram(bounds=[1.0], counts=[100], count=100, sum=100.0)))
    assert measured.client_bound is not None
    slo = {"ttft_p99_ms": 500}
    server, client, strict = (ObjectiveSpec(slo=slo, source=s)
                              for s in ("server", "client", "strict"))
    assert objective.score([measured], server, gpus=1) == 400.0
    assert objective.score([measured], client, gpus=1) is None  # 900 ms > 500
    loose = {"ttft_p99_ms": 1000}
    assert objective.score([measured], ObjectiveSpec(slo=loose, source="client"), gpus=1) == 300
    assert objective.score([measured], ObjectiveSpec(slo=loose, source="strict"), gpus=1) is None
    assert any(v.startswith("client_bound") for v in objective.violations(measured, strict))
    strict_loose = ObjectiveSpec(slo=loose, source="strict")
    assert (objective.slo_excess([measured], strict_loose) or 0) > 0  # learned as infeasible
    assert ObjectiveSpec().source == "server"


def test_scenario_weights_make_the_score_a_weighted_mean() -> None:
    spec = ObjectiveSpec(slo={"tpot_p99_ms": 50})
    levels = [level(4, 100, 0.02, "D(1,1)"), level(4, 400, 0.02, "D(2,2)")]
    assert objective.score(levels, spec, gpus=1) == 250  # no weights: the plain mean
    plain = WorkloadSpec(scenarios=["D(1,1)", "D(2,2)"])
    assert objective.score(levels, spec, gpus=1, workload=plain) == 250
    mostly_short = WorkloadSpec(scenarios=[{"scenario": "D(1,1)", "weight": 3}, "D(2,2)"],
                                concurrency=[4])
    assert objective.score(levels, spec, gpus=1, workload=mostly_short) == 175
    # The ladder scores with them too (the trial runner and the pre-screen use it).
    ladder = objective.Ladder(mostly_short, spec, gpus=1)
    ladder.record(levels)
    assert ladder.score == 175 and ladder.rung_value == 175


def test_cost_per_mtok_prices_the_gpus_at_the_goodput_and_is_lower_better() -> None:
    spec = ObjectiveSpec(metric="cost_per_mtok", usd_per_gpu_hour=3.6, slo={"tpot_p99_ms": 50})
    assert objective.direction(spec) == "min"
    levels = [level(4, 100, 0.02), level(16, 300, 0.04), level(64, 900, 0.09)]
    # 2 GPUs at $3.60/h = $7.20/h over 300 tok/s (the best level meeting the SLO) = 1.08 Mtok/h
    assert objective.score(levels, spec, gpus=2) == pytest.approx(7.2 / 1.08)
    assert objective.best_level(levels, spec).concurrency == 16  # type: ignore[union-attr]
    ladder = objective.Ladder(WorkloadSpec(scenarios=["D(1,1)"], concurrency=[4]), spec, 1)
    ladder.record([level(4, 100, 0.02)])
    assert ladder.rung_value == ladder.score == pytest.approx(3.6 / 0.36)
    front = objective.pareto_front(
        [{"score": 5.0, "latency": 10.0}, {"score": 4.0, "latency": 20.0},
         {"score": 6.0, "latency": 15.0}], spec)
    assert [p["score"] for p in front] == [5.0, 4.0]  # cheaper is better


@pytest.mark.parametrize(("objective_part", "path"), [
    ({"metric": "cost_per_mtok", "per_gpu": True}, "objective.per_gpu"),
    ({"metric": "cost_per_mtok", "direction": "max"}, "objective.direction"),
])
def test_cost_per_mtok_refuses_what_contradicts_it(objective_part: dict[str, Any],
                                                   path: str) -> None:
    data = yaml.safe_load(Path("examples/quickstart.yaml").read_text())
    with pytest.raises(SpecError) as e:
        spec_from_dict({**data, "objective": {**data["objective"], **objective_part}})
    assert [where for where, _ in e.value.errors] == [path]


def test_cost_per_mtok_takes_the_price_tables_price_or_asks_for_one() -> None:
    data = yaml.safe_load(Path("examples/quickstart.yaml").read_text())
    cost = {**data["objective"], "metric": "cost_per_mtok"}
    spec = spec_from_dict({**data, "objective": cost})
    assert spec.gpu_type == "H100"
    assert spec.objective.usd_per_gpu_hour == default_prices()["H100"]["usd_per_gpu_hour"]
    # kept in the study's record, so a later change of the table never rescores it
    assert spec.model_dump()["objective"]["usd_per_gpu_hour"] == spec.objective.usd_per_gpu_hour
    mine = spec_from_dict({**data, "objective": {**cost, "usd_per_gpu_hour": 2.0}})
    assert mine.objective.usd_per_gpu_hour == 2.0
    with pytest.raises(SpecError) as e:
        spec_from_dict({**data, "backend": {"kind": "local"}, "objective": cost})
    assert [where for where, _ in e.value.errors] == ["objective.usd_per_gpu_hour"]
