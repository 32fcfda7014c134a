"""Searchers: only configs that meet the constraints and fit; failures teach the search."""

from __future__ import annotations

import pickle

import optuna
import pytest

from tuner.search import make_searcher
from tuner.spec import spec_from_dict


def make_spec(algorithm: str) -> object:
    return spec_from_dict(
        {
            "name": "s",
            "model": {"name": "m"},
            "backend": {"kind": "estimate", "gpus": 2},
            "space": {
                "tp_size": [1, 2],
                "cuda_graph_max_bs": [8, 64, 256],
                "max_running_requests": {"low": 16, "high": 128, "type": "int", "step": 16},
            },
            "constraints": ["cuda_graph_max_bs <= max_running_requests"],
            "search": {"algorithm": algorithm, "max_trials": 100 if algorithm == "grid" else 20},
        }
    )


@pytest.mark.parametrize("algorithm", ["grid", "random", "bayes"])
def test_suggestions_meet_constraints_and_survive_pickling(algorithm: str) -> None:
    spec = make_spec(algorithm)
    searcher = make_searcher(spec, capacity=2, metric="objective", mode="max")
    for i in range(12):
        config = searcher.suggest(str(i))
        assert config["cuda_graph_max_bs"] <= config["max_running_requests"]
        assert config["tp_size"] in (1, 2)
        searcher.on_trial_complete(
            str(i), {"objective": float(config["max_running_requests"]), "ladder_done": True}
        )
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
        searcher.on_trial_complete(str(len(seen) - 1), {"objective": 1.0, "ladder_done": True})
    assert len(seen) == len(set(seen)) == len(list(spec.grid()))


def test_gpu_budget_holds_back_what_does_not_fit() -> None:
    from tuner.search import GpuBudgetLimiter

    spec = spec_from_dict(
        {
            "name": "s",
            "model": {"name": "m"},
            "backend": {"kind": "estimate", "gpus": 3},
            "space": {"tp_size": [2, 1, 2]},
            "search": {"algorithm": "grid"},
        }
    )
    limiter = GpuBudgetLimiter(
        make_searcher(spec, capacity=3, metric="objective", mode="max"),
        max_concurrent=3,
        capacity=3,
        units=spec.gpus_needed,
    )
    assert limiter.suggest("a") == {"tp_size": 2}
    assert limiter.suggest("b") == {"tp_size": 1}
    assert limiter.suggest("c") is None  # tp 2 needs 2 units, 0 are free: held back
    limiter.on_trial_complete("b", {"objective": 1.0})
    assert limiter.suggest("d") is None  # 1 unit free: still not enough
    limiter.on_trial_complete("a", {"objective": 1.0, "ladder_done": True})
    assert limiter.suggest("e") == {"tp_size": 2}
    assert limiter.suggest("f") == "FINISHED"


def cliff_spec(seed: int) -> object:
    """Throughput grows with mem_fraction_static up to a cliff at 0.9, where servers OOM."""
    return spec_from_dict(
        {
            "name": "s",
            "model": {"name": "m"},
            "backend": {"kind": "estimate", "gpus": 1},
            "space": {
                "mem_fraction_static": {"low": 0.5, "high": 0.99, "step": 0.01},
                "chunked_prefill_size": [1024, 2048, 4096, 8192],
            },
            "search": {"algorithm": "bayes", "seed": seed, "max_trials": 40},
        }
    )


def proposals_past_the_cliff(seed: int, *, told_infeasible: bool) -> int:
    searcher = make_searcher(cliff_spec(seed), capacity=1, metric="objective", mode="max")
    bad = 0
    for i in range(40):
        config = searcher.suggest(str(i))
        memory = config["mem_fraction_static"]
        if memory < 0.9:
            searcher.on_trial_complete(
                str(i), {"objective": memory * 1000, "slo_excess": -0.1, "ladder_done": True}
            )
            continue
        bad += 1
        if told_infeasible:  # what the searcher does with a failed trial's result
            searcher.on_trial_complete(str(i), {"failed": True, "reason": "oom", "objective": 0.0})
        else:  # the alternative: Optuna FAIL, which its samplers ignore
            searcher.on_trial_complete(str(i))
    return bad


def test_failed_trials_are_told_infeasible_so_tpe_avoids_their_neighbours() -> None:
    # The best configs sit right below the OOM cliff. Told as FAIL, failures are invisible to
    # TPE and it keeps proposing past the cliff; told as complete-but-infeasible, it stops.
    told = sum(proposals_past_the_cliff(seed, told_infeasible=True) for seed in range(3))
    failed = sum(proposals_past_the_cliff(seed, told_infeasible=False) for seed in range(3))
    assert told < 0.6 * failed, (told, failed)
    assert told < 0.4 * 3 * 40


def test_slo_excess_is_an_optuna_constraint_and_failures_violate_it() -> None:
    from tuner.search import FAILED_EXCESS

    searcher = make_searcher(make_spec("bayes"), capacity=2, metric="objective", mode="max")
    for i, result in enumerate(
        [
            {"objective": 5.0, "slo_excess": -0.2, "ladder_done": True},
            {"objective": 0.0, "slo_excess": 0.7, "ladder_done": True},
            {"objective": 0.0, "failed": True},
        ]
    ):
        searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), result)
    complete = optuna.trial.TrialState.COMPLETE
    constraints = [t.constraints for t in searcher.study.trials if t.state == complete]
    assert constraints == [{"slo": -0.2}, {"slo": 0.7}, {"slo": FAILED_EXCESS}]


def test_prescreen_seeds_come_first_and_dropped_configs_never() -> None:
    from tuner.search import Prescreen

    spec = make_spec("bayes")
    seeds = [
        {"tp_size": 2, "cuda_graph_max_bs": 64, "max_running_requests": 112},
        {"tp_size": 1, "cuda_graph_max_bs": 8, "max_running_requests": 16},
    ]
    dropped = [c for c in spec.grid() if c["tp_size"] == 2 and c not in seeds]
    screened = Prescreen(predictions=[], seeds=seeds, dropped=dropped, seconds=0.0)
    searcher = make_searcher(spec, capacity=2, metric="objective", mode="max", prescreen=screened)
    proposed = []
    while isinstance(config := searcher.suggest(str(len(proposed))), dict):
        proposed.append(config)
        searcher.on_trial_complete(str(len(proposed) - 1), {"objective": 1.0, "ladder_done": True})
    assert proposed[:2] == seeds
    assert not [c for c in proposed if c in dropped]
    assert len(proposed) == len(list(spec.grid())) - len(dropped)

    grid = make_searcher(
        spec.model_copy(update={"search": spec.search.model_copy(update={"algorithm": "grid"})}),
        capacity=2,
        metric="objective",
        mode="max",
        prescreen=screened,
    )
    ordered = [grid.suggest(str(i)) for i in range(len(list(spec.grid())))]
    assert ordered[:2] == seeds  # a grid measures everything: the dropped ones come last
    assert ordered[-len(dropped) :] == dropped


def test_a_held_back_suggestion_keeps_its_optuna_trial() -> None:
    from tuner.search import GpuBudgetLimiter

    spec = spec_from_dict(
        {
            "name": "s",
            "model": {"name": "m"},
            "backend": {"kind": "estimate", "gpus": 2},
            "space": {"tp_size": [2], "max_running_requests": [8, 16, 32]},
        }
    )
    searcher = make_searcher(spec, capacity=2, metric="objective", mode="max")
    limiter = GpuBudgetLimiter(searcher, max_concurrent=2, capacity=2, units=spec.gpus_needed)
    assert limiter.suggest("a") is not None
    assert limiter.suggest("b") is None  # made for "b", held back: no GPUs free
    limiter.on_trial_complete("a", {"objective": 1.0, "ladder_done": True})
    assert limiter.suggest("c") is not None  # the held suggestion, now trial "c"'s
    limiter.on_trial_complete("c", {"objective": 2.0, "ladder_done": True})
    complete = optuna.trial.TrialState.COMPLETE
    assert [t.values for t in searcher.study.trials if t.state == complete] == [[1.0], [2.0]]


def test_a_multi_objective_study_tells_score_and_latency() -> None:
    spec = spec_from_dict(
        {
            "name": "s",
            "model": {"name": "m"},
            "backend": {"kind": "estimate", "gpus": 2},
            "space": {"max_running_requests": [8, 16, 32, 64]},
            "objective": {"pareto": "tpot_p99_ms"},
            "search": {"algorithm": "bayes"},
        }
    )
    searcher = make_searcher(spec, capacity=2, metric="objective", mode="max")
    searcher.suggest("a")
    searcher.on_trial_complete(
        "a", {"objective": 100.0, "latency": 20.0, "slo_excess": -0.5, "ladder_done": True}
    )
    searcher.suggest("b")
    searcher.on_trial_complete("b", {"objective": 0.0, "failed": True})
    complete = optuna.trial.TrialState.COMPLETE
    values = [t.values for t in searcher.study.trials if t.state == complete]
    assert values == [[100.0, 20.0], [0.0, 1e12]]


def test_a_trial_stopped_below_the_top_of_its_ladder_teaches_nothing() -> None:
    # Its score so far is only a lower bound: told as a value, TPE would shun a good region.
    searcher = make_searcher(make_spec("bayes"), capacity=2, metric="objective", mode="max")
    searcher.suggest("a")
    searcher.on_trial_complete("a", {"objective": 40.0, "slo_excess": -0.3, "done": True})
    assert {t.state for t in searcher.study.trials} == {optuna.trial.TrialState.FAIL}


@pytest.mark.parametrize("algorithm", ["grid", "bayes"])
def test_a_resumed_search_skips_what_was_measured(algorithm: str) -> None:
    spec = make_spec(algorithm)
    measured = list(spec.grid())[:5]
    searcher = make_searcher(spec, capacity=2, metric="objective", mode="max",
                             measured=measured)
    proposed = []
    while isinstance(config := searcher.suggest(str(len(proposed))), dict):
        proposed.append(config)
        searcher.on_trial_complete(str(len(proposed) - 1), {"objective": 1.0})
    keys = {tuple(sorted(c.items())) for c in proposed}
    assert not keys & {tuple(sorted(c.items())) for c in measured}
    assert len(proposed) == len(list(spec.grid())) - 5
