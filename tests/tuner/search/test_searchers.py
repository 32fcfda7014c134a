"""Searchers: only configs that meet the constraints and fit; failures teach the search."""

from __future__ import annotations

import pickle

import pytest

from tuner.search import make_searcher
from tuner.spec import spec_from_dict


def make_spec(algorithm: str) -> object:
    return spec_from_dict({
        "name": "s", "model": {"name": "m"}, "backend": {"kind": "estimate", "gpus": 2},
        "space": {"tp_size": [1, 2], "cuda_graph_max_bs": [8, 64, 256],
                  "max_running_requests": {"low": 16, "high": 128, "type": "int", "step": 16}},
        "constraints": ["cuda_graph_max_bs <= max_running_requests"],
        "search": {"algorithm": algorithm, "max_trials": 100 if algorithm == "grid" else 20},
    })


@pytest.mark.parametrize("algorithm", ["grid", "random", "bayes"])
def test_suggestions_meet_constraints_and_survive_pickling(algorithm: str) -> None:
    spec = make_spec(algorithm)
    searcher = make_searcher(spec, capacity=2, metric="objective", mode="max")
    for i in range(12):
        config = searcher.suggest(str(i))
        assert config["cuda_graph_max_bs"] <= config["max_running_requests"]
        assert config["tp_size"] in (1, 2)
        searcher.on_trial_complete(str(i), {"objective": float(config["max_running_requests"])})
    restored = pickle.loads(pickle.dumps(searcher))
    assert restored.suggest("next") is not None


def test_grid_finishes() -> None:
    spec = make_spec("grid")
    searcher = make_searcher(spec, capacity=2, metric="objective", mode="max")
    suggestions = [searcher.suggest(str(i)) for i in range(100)]
    points = [s for s in suggestions if isinstance(s, dict)]
    assert len(points) == len(list(spec.grid()))
    assert suggestions[len(points)] == "FINISHED"


def test_capacity_excludes_configs_that_do_not_fit() -> None:
    searcher = make_searcher(make_spec("random"), capacity=1, metric="objective", mode="max")
    assert {searcher.suggest(str(i))["tp_size"] for i in range(10)} == {1}


def test_no_config_is_proposed_twice() -> None:
    spec = make_spec("bayes")
    searcher = make_searcher(spec, capacity=2, metric="objective", mode="max")
    seen = []
    while isinstance(config := searcher.suggest(str(len(seen))), dict):
        seen.append(tuple(sorted(config.items())))
        searcher.on_trial_complete(str(len(seen) - 1), {"objective": 1.0})
    assert len(seen) == len(set(seen)) == len(list(spec.grid()))


def test_gpu_budget_holds_back_what_does_not_fit() -> None:
    from tuner.search import GpuBudgetLimiter

    spec = spec_from_dict({
        "name": "s", "model": {"name": "m"}, "backend": {"kind": "estimate", "gpus": 3},
        "space": {"tp_size": [2, 1, 2]}, "search": {"algorithm": "grid"}})
    limiter = GpuBudgetLimiter(make_searcher(spec, capacity=3, metric="objective", mode="max"),
                               max_concurrent=3, capacity=3, units=spec.gpus_needed)
    assert limiter.suggest("a") == {"tp_size": 2}
    assert limiter.suggest("b") == {"tp_size": 1}
    assert limiter.suggest("c") is None  # tp 2 needs 2 units, 0 are free: held back
    limiter.on_trial_complete("b", {"objective": 1.0})
    assert limiter.suggest("d") is None  # 1 unit free: still not enough
    limiter.on_trial_complete("a", {"objective": 1.0})
    assert limiter.suggest("e") == {"tp_size": 2}
    assert limiter.suggest("f") == "FINISHED"
