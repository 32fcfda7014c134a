"""Bad and absurd input: every case is a ``SpecError`` naming the field, found fast."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import yaml

from tuner.exceptions import SpecError
from tuner.spec import spec_from_dict
from tuner.spec._expr import Expression, ExpressionError
from tuner.spec._load import load_spec

# Hostile input must be refused without walking it: a guard that lets it through shows as a
# test that runs out of time or memory, not as a slow pass (speeds are in benchmarks/).
pytestmark = pytest.mark.timeout(60)

NAN, INF = float("nan"), float("inf")


def spec_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "limits",
        "model": {"name": "Llama-3.1-8B-Instruct"},
        "backend": {"kind": "twin", "gpus": 4},
        "space": {"tp_size": [1, 2], "max_running_requests": [64, 128]},
    }
    data.update(changes)
    return data


def errors_of(data: Any) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    return dict(info.value.errors)


def _workload(**fields: Any) -> dict[str, Any]:
    return spec_data(workload=fields)


def _search(**fields: Any) -> dict[str, Any]:
    return spec_data(search=fields)


BAD_SPECS: list[Any] = [
    pytest.param(_workload(concurrency=[10**7]), "workload.concurrency", "at most 10,000",
                 id="concurrency-1e7"),
    pytest.param(_workload(concurrency=list(range(1, 102))), "workload.concurrency", "at most",
                 id="concurrency-101-levels"),
    pytest.param(_workload(scenarios=["D(10,10)"] * 101), "workload.scenarios", "at most",
                 id="scenarios-101"),
    pytest.param(_workload(max_requests_per_level=10**6), "workload.max_requests_per_level",
                 "100000", id="requests-1e6"),
    pytest.param(_workload(max_seconds_per_level=86_400), "workload.max_seconds_per_level",
                 "3600", id="seconds-86400"),
    pytest.param(_workload(warmup_requests=10**7), "workload.warmup_requests", "10000",
                 id="warmup-1e7"),
    pytest.param(_workload(warmup_requests=-1), "workload.warmup_requests", "0",
                 id="warmup-negative"),
    pytest.param(spec_data(backend={"kind": "twin", "startup_timeout_s": INF}),
                 "backend.startup_timeout_s", "finite", id="startup-timeout-inf"),
    pytest.param(spec_data(backend={"kind": "local", "startup_timeout_s": 1e9}),
                 "backend.startup_timeout_s", "at most", id="local-startup-timeout-1e9"),
    pytest.param(spec_data(trial_timeout_s=INF), "trial_timeout_s", "finite",
                 id="trial-timeout-inf"),
    pytest.param(spec_data(trial_timeout_s=NAN), "trial_timeout_s", "finite",
                 id="trial-timeout-nan"),
    pytest.param(spec_data(trial_timeout_s=1e12), "trial_timeout_s", "less than",
                 id="trial-timeout-1e12"),
    pytest.param(_search(time_budget_s=INF), "search.time_budget_s", "finite",
                 id="time-budget-inf"),
    pytest.param(_search(max_trials=10**6), "search.max_trials", "10000", id="max-trials-1e6"),
    pytest.param(_search(seed=2**64), "search.seed", "4294967295", id="seed-2e64"),
    pytest.param(spec_data(fixed={"mem_fraction_static": NAN}), "fixed.mem_fraction_static",
                 "finite", id="fixed-nan"),
    pytest.param(spec_data(space={"mem_fraction_static": {"low": NAN, "high": 0.9}}),
                 "space.mem_fraction_static.low", "finite", id="range-low-nan"),
    pytest.param(spec_data(space={"mem_fraction_static": {"low": 0.5, "high": INF}}),
                 "space.mem_fraction_static.high", "finite", id="range-high-inf"),
    pytest.param(spec_data(objective={"slo": {"ttft_p99_ms": NAN}}),
                 "objective.slo.ttft_p99_ms", "finite", id="slo-nan"),
    pytest.param(spec_data(space={"max_running_requests": list(range(1, 1002))}),
                 "space.max_running_requests", "at most 1,000", id="list-1001-values"),
    pytest.param(spec_data(constraints=["tp_size >= 1"] * 101), "constraints", "at most",
                 id="constraints-101"),
]


@pytest.mark.parametrize(("data", "path", "fragment"), BAD_SPECS)
def test_absurd_values_are_refused(data: dict[str, Any], path: str, fragment: str) -> None:
    errors = errors_of(data)
    assert path in errors, errors
    assert fragment in errors[path], errors[path]


def test_a_huge_grid_is_refused_without_listing_it() -> None:
    values = list(range(1, 1001))
    errors = errors_of(spec_data(space={"max_running_requests": values,
                                        "cuda_graph_max_bs": values},
                                 search={"algorithm": "grid"}))
    assert "1,000,000 points" in errors["space"]
    fine = {"low": 0.1, "high": 0.9, "step": 1e-9}
    errors = errors_of(spec_data(space={"mem_fraction_static": fine},
                                 search={"algorithm": "grid"}))
    assert "points" in errors["space"]


def test_a_big_space_is_fine_for_bayes() -> None:
    values = list(range(1, 1001))
    spec = spec_from_dict(spec_data(space={"max_running_requests": values,
                                           "cuda_graph_max_bs": values}))
    assert spec.max_trials == 20


def test_the_first_points_of_a_huge_grid_come_at_once() -> None:
    # the twin pre-screen takes the first few points of any discrete space
    fine = {"low": 0.5, "high": 0.9, "step": 1e-9}
    spec = spec_from_dict(spec_data(space={"mem_fraction_static": fine, "tp_size": [1, 2]}))
    first = list(itertools.islice(spec.grid(), 3))  # lazily: the grid has 4e8 points
    assert first == [{"mem_fraction_static": 0.5, "tp_size": 1},
                     {"mem_fraction_static": 0.5, "tp_size": 2},
                     {"mem_fraction_static": 0.500000001, "tp_size": 1}]


def test_a_grid_counts_its_points_once() -> None:
    spec = spec_from_dict(spec_data(search={"algorithm": "grid"},
                                    constraints=["max_running_requests > 64"]))
    assert spec.max_trials == 2
    spec._grid_sizes[spec.backend.gpus] = 7  # what a second enumeration would overwrite
    assert spec.max_trials == 7


# --- constraint expressions -------------------------------------------------------------------

CONSTRAINTS: list[Any] = [
    pytest.param(" + ".join(["tp_size"] * 2000) + " > 0", "characters", id="2000-terms"),
    pytest.param("1<2 and " * 70 + "tp_size > 0", "more than 200 terms", id="210-terms"),
    pytest.param("not " * 5000 + "tp_size", "characters", id="not-x5000"),
    pytest.param("not " * 200 + "tp_size", "deeper than 50", id="not-x200"),
    pytest.param("-" * 900 + "tp_size < 0", "deeper than 50", id="minus-x900"),
    pytest.param("(" * 250 + "tp_size" + ")" * 250 + " > 0", "too many nested",
                 id="parens-x250"),
    pytest.param("tp_size / 0 > 1", "division by zero", id="div-zero"),
    pytest.param("max_running_requests // (tp_size - 1) > 1", "by zero",
                 id="div-zero-at-one-point"),
    pytest.param("'a' < tp_size", "not supported", id="str-lt-int"),
    pytest.param("'a' * 50000000 * tp_size == 'a'", "text", id="str-repeat"),
    pytest.param("schedule_policy * 50000000 == 'a'", "arithmetic needs numbers",
                 id="str-flag-repeat"),
    pytest.param("-schedule_policy == 'a'", "needs a number", id="str-flag-negated"),
    pytest.param("__import__('os')", "do not allow", id="call"),
]


@pytest.mark.parametrize(("text", "fragment"), CONSTRAINTS)
def test_bad_constraints_name_the_constraint(text: str, fragment: str) -> None:
    data = spec_data(space={"tp_size": [1, 2], "schedule_policy": ["fcfs", "lpm"],
                            "max_running_requests": [64, 128]},
                     constraints=["tp_size >= 1", text])
    errors = errors_of(data)
    assert fragment in errors.get("constraints.1", ""), errors


def test_grid_search_evaluates_constraints_at_every_point() -> None:
    data = spec_data(space={"tp_size": [1, 2, 4], "max_running_requests": [64, 128]},
                     constraints=["max_running_requests / (tp_size - 4) < 1000"],
                     search={"algorithm": "grid"})
    data["backend"]["gpus"] = 4
    # tp_size=4 is the last value, which the cheap probe meets too; any point would do
    assert "by zero" in errors_of(data)["constraints.0"]


def test_expressions_evaluate_numbers_only() -> None:
    expr = Expression("a * b <= 10")
    assert expr({"a": 2, "b": 5}) and not expr({"a": 3, "b": 5})
    with pytest.raises(ExpressionError, match="arithmetic needs numbers"):
        expr({"a": "x" * 10, "b": 10**7})
    with pytest.raises(ExpressionError, match="has no value"):
        expr({"a": 1})
    assert Expression("schedule_policy == 'lpm'")({"schedule_policy": "lpm"})


def test_a_config_a_constraint_cannot_evaluate_is_not_allowed_at_run_time() -> None:
    spec = spec_from_dict(spec_data(constraints=["max_running_requests // tp_size >= 1"]))
    assert spec.allows({"tp_size": 2, "max_running_requests": 64})
    assert not spec.allows({"tp_size": 0, "max_running_requests": 64})
    with pytest.raises(ExpressionError, match=r"constraints\.0"):
        spec.allows({"tp_size": 0, "max_running_requests": 64}, strict=True)


# --- the prototype's task format --------------------------------------------------------------

def _task(**changes: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "task_name": "t", "deployment_mode": "docker",
        "model": {"id_or_path": "Llama-3.1-8B-Instruct"},
        "parameters": {"tp-size": [1, 2]},
        "benchmark": {"num_concurrency": [1, 4], "max_time_per_iteration": 1},
        "slo": {"latency": {"p90": {"threshold": 5.0}}},
    }
    task.update(changes)
    return task


PROTOTYPE_TASKS: list[Any] = [
    pytest.param(_task(model="llama"), "model", id="model-string"),
    pytest.param(_task(parameters=["tp-size", 1]), "parameters", id="parameters-list"),
    pytest.param(_task(parameters={1: [1]}), "parameters.1", id="parameter-name-int"),
    pytest.param(_task(parameters={"tp-size": {"values": "1,2"}}), "parameters.tp-size",
                 id="tp-values-string"),
    pytest.param(_task(benchmark={"max_time_per_iteration": "ten"}),
                 "benchmark.max_time_per_iteration", id="max-time-text"),
    pytest.param(_task(benchmark={"max_time_per_iteration": NAN}),
                 "benchmark.max_time_per_iteration", id="max-time-nan"),
    pytest.param(_task(slo={"latency": {"p90": {"threshold": "fast"}}}),
                 "slo.latency.p90.threshold", id="threshold-text"),
    pytest.param(_task(slo={"ttft": {"threshold": [1]}}), "slo.ttft.threshold",
                 id="ttft-threshold-list"),
    pytest.param(_task(slo={"latency": {"p90": 5}}), "slo.latency.p90", id="latency-number"),
    pytest.param(_task(slo={"latency": ["p90"]}), "slo.latency", id="latency-list"),
    pytest.param(_task(slo="fast"), "slo", id="slo-string"),
    pytest.param(_task(benchmark={"num_concurrency": [[1], {"a": 1}]}),
                 "benchmark.num_concurrency", id="concurrency-unhashable"),
    pytest.param(_task(benchmark={"num_concurrency": 4}), "benchmark.num_concurrency",
                 id="concurrency-number"),
    pytest.param(_task(benchmark=[1]), "benchmark", id="benchmark-list"),
    pytest.param(_task(optimization={"strategy": ["grid"]}), "optimization.strategy",
                 id="strategy-list"),
    pytest.param(_task(deployment_mode=["ome"]), "deployment_mode", id="mode-list"),
]


@pytest.mark.parametrize(("task", "path"), PROTOTYPE_TASKS)
def test_prototype_tasks_of_the_wrong_shape_name_the_field(task: dict[str, Any],
                                                           path: str) -> None:
    assert path in errors_of(task)


def test_the_reference_prototype_task_still_converts() -> None:
    spec = spec_from_dict(_task())
    assert spec.space == {"tp_size": [1, 2]} and spec.workload.concurrency == [1, 4]


YAML_BOMBS: list[Any] = [
    pytest.param("task_name: t\nparameters: &p {tp: *p}\n", id="recursive-parameters"),
    pytest.param("task_name: t\nbenchmark: {num_concurrency: &c [1, *c]}\n",
                 id="recursive-concurrency"),
    pytest.param("name: x\nmodel: {name: m}\nspace: &s {tp_size: *s}\n", id="recursive-space"),
    pytest.param("a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                 "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                 "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                 "name: x\nmodel: {name: m}\nspace: {tp_size: *f}\n", id="billion-laughs"),
    pytest.param("name: x\nmodel: {name: m}\nspace: " + "[" * 5000 + "]" * 5000 + "\n",
                 id="deep-nesting"),
]


@pytest.mark.parametrize("text", YAML_BOMBS)
def test_yaml_aliases_and_nesting_are_refused(text: str, tmp_path: Any) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError):
        load_spec(path)


def test_a_cycle_in_data_is_refused() -> None:
    data = spec_data()
    data["space"]["tp_size"] = [1]
    data["space"]["tp_size"].append(data["space"]["tp_size"])
    assert "spec" in errors_of(data)
    assert yaml  # the YAML cases above build such data from aliases
