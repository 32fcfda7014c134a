"""StudySpec: what it accepts, and the errors it gives for what it does not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuner.exceptions import SpecError
from tuner.spec import load_spec, override, spec_from_dict

ROOT = Path(__file__).resolve().parents[3]


def spec_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "llama8b-chat",
        "model": {"name": "Llama-3.1-8B-Instruct"},
        "backend": {"kind": "twin", "gpu": "H100", "gpus": 4},
        "space": {
            "tp_size": [1, 2],
            "mem_fraction_static": {"low": 0.7, "high": 0.92},
            "schedule_policy": ["fcfs", "lpm"],
            "max_running_requests": {"low": 32, "high": 512, "log": True, "type": "int"},
        },
        "objective": {"slo": {"ttft_p99_ms": 1000, "tpot_p99_ms": 60}},
    }
    data.update(changes)
    return data


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    return dict(info.value.errors)


def test_design_example_is_valid_with_defaults() -> None:
    spec = spec_from_dict(spec_data())
    assert spec.backend.kind == "twin"
    assert spec.search.algorithm == "bayes"
    assert spec.max_trials == 20
    assert spec.objective.slo.bounds() == {"ttft_p99_ms": 1000, "tpot_p99_ms": 60,
                                           "error_rate": 0.01}


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        ({"spac": {}}, "spac", "did you mean 'space'"),
        ({"backend": {"kind": "twin", "gpuz": 2}}, "backend.gpuz", "did you mean 'gpu'"),
        ({"backend": {"kind": "twin", "gpu": "H800"}}, "backend.gpu", "H100"),
        ({"space": {"tp_sise": [1]}}, "space.tp_sise", "did you mean 'tp_size'"),
        ({"space": {"port": [1]}}, "space.port", "set by the backend"),
        ({"space": {"tp_size": [8]}}, "space.tp_size", "never fit"),
        ({"space": {"schedule_policy": ["fifo"]}}, "space.schedule_policy", "one of lpm"),
        ({"space": {"mem_fraction_static": [1.5]}}, "space.mem_fraction_static", "between"),
        ({"space": {"schedule_policy": {"low": 1, "high": 2}}}, "space.schedule_policy",
         "numeric"),
        ({"space": {"tp_size": {"low": 1.0, "high": 2.5}}}, "space.tp_size", "int range"),
        ({"workload": {"concurrency": [8, 4]}}, "workload.concurrency", "ascending"),
        ({"workload": {"scenarios": ["D(10)"]}}, "workload.scenarios", "genai-bench scenario"),
        ({"constraints": ["__import__('os')"]}, "constraints.0", "do not allow"),
        ({"constraints": ["foo <= 2"]}, "constraints.0", "foo"),
        ({"objective": {"metric": "ttft_p99"}}, "objective.metric", "ttft_p99_ms"),
        ({"name": "Bad Name"}, "name", "pattern"),
        ({"model": {"name": "x; rm -rf /"}}, "model.name", "pattern"),
    ],
)
def test_bad_specs_name_the_field_and_reason(change: dict[str, Any], path: str,
                                             fragment: str) -> None:
    errors = errors_of(spec_data(**change))
    assert path in errors, errors
    assert fragment in errors[path]


def test_grid_needs_enough_trials_and_discrete_axes() -> None:
    data = spec_data(space={"tp_size": [1, 2], "schedule_policy": ["fcfs", "lpm"]},
                     search={"algorithm": "grid", "max_trials": 3})
    assert "grid has 4 points" in errors_of(data)["search.max_trials"]
    data["search"] = {"algorithm": "grid"}
    assert spec_from_dict(data).max_trials == 4
    data["space"]["mem_fraction_static"] = {"low": 0.7, "high": 0.9}
    assert "step" in errors_of(data)["space.mem_fraction_static"]


def test_grid_respects_constraints_and_gpus() -> None:
    spec = spec_from_dict(spec_data(
        backend={"kind": "twin", "gpus": 2},
        space={"tp_size": [1, 2], "cuda_graph_max_bs": [8, 64],
               "max_running_requests": [16, 32]},
        constraints=["cuda_graph_max_bs <= max_running_requests"],
        search={"algorithm": "grid"}))
    points = list(spec.grid())
    assert len(points) == 4  # cuda_graph_max_bs=64 is excluded with both request caps
    assert all(p["cuda_graph_max_bs"] == 8 for p in points)
    assert not spec.allows({"tp_size": 2, "dp_size": 2}, capacity=2)


def test_stepped_range_points() -> None:
    spec = spec_from_dict(spec_data(
        space={"mem_fraction_static": {"low": 0.7, "high": 0.9, "step": 0.05}},
        search={"algorithm": "grid"}))
    assert [p["mem_fraction_static"] for p in spec.grid()] == [0.7, 0.75, 0.8, 0.85, 0.9]


def test_prototype_task_json_is_converted() -> None:
    task = {
        "task_name": "docker-slo-aware-tune", "deployment_mode": "docker",
        "model": {"id_or_path": "llama-3-2-1b-instruct", "namespace": "autotuner"},
        "base_runtime": "sglang",
        "parameters": {"tp-size": [1, 2], "mem-fraction-static": [0.7, 0.8],
                       "mem_frac": {"type": "choice", "values": [0.85]}},
        "optimization": {"strategy": "grid_search", "objective": "minimize_latency",
                         "max_iterations": 3, "timeout_per_iteration": 600},
        "slo": {"latency": {"p90": {"threshold": 5.0}}, "ttft": {"threshold": 1.0}},
        "benchmark": {"traffic_scenarios": ["D(100,100)"], "num_concurrency": [4, 1],
                      "max_time_per_iteration": 10, "max_requests_per_iteration": 50},
    }
    with pytest.raises(SpecError, match="parameters.mem_frac: names the same flag"):
        spec_from_dict(task)
    del task["parameters"]["mem_frac"]
    spec = spec_from_dict(task)
    assert spec.backend.kind == "local"
    assert spec.space == {"tp_size": [1, 2], "mem_fraction_static": [0.7, 0.8]}
    assert spec.workload.concurrency == [1, 4]
    assert spec.workload.max_seconds_per_level == 600
    assert spec.objective.metric == "e2e_p50_ms" and spec.objective.direction == "min"
    assert spec.objective.slo.e2e_p90_ms == 5000 and spec.objective.slo.ttft_p50_ms == 1000
    assert spec.search.algorithm == "grid" and spec.max_trials == 4


def test_every_example_loads(tmp_path: Path) -> None:
    examples = sorted((ROOT / "examples").glob("*.yaml"))
    assert examples
    for path in (p for p in examples if not p.name.startswith("plan-")):  # plans: test_plan
        spec = load_spec(path)
        assert spec.name
    # JSON works too, and a missing file is a SpecError naming the path.
    path = tmp_path / "s.json"
    path.write_text(json.dumps(spec_data()))
    assert load_spec(path).name == "llama8b-chat"
    with pytest.raises(SpecError, match="nope.yaml"):
        load_spec(tmp_path / "nope.yaml")


def test_overrides_revalidate() -> None:
    spec = spec_from_dict(spec_data())
    changed = override(spec, backend="estimate", algorithm="random", max_trials=5, seed=3)
    assert changed.backend.kind == "estimate" and changed.backend.gpus == 4
    assert (changed.search.algorithm, changed.max_trials, changed.search.seed) == ("random", 5, 3)
    with pytest.raises(SpecError, match="base_model"):
        override(spec, backend="ome")


def test_check_params() -> None:
    spec = spec_from_dict(spec_data())
    spec.check_params({"tp_size": 2, "schedule_policy": "lpm"})
    with pytest.raises(SpecError, match="params.tp_sise"):
        spec.check_params({"tp_sise": 2})
    with pytest.raises(SpecError, match="GPUs"):
        spec.check_params({"tp_size": 2, "dp_size": 4})
