"""Ray Tune searchers built from a spec: grid, random and bayes (Optuna TPE).

Each proposes only configs that meet the spec's constraints and fit the GPUs, so no trial slot
is spent on a config that could never run.
"""

from __future__ import annotations

import functools
import logging
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from ray.tune.search import Searcher

from tuner.spec import RangeSpec, StudySpec

__all__ = ["SEARCHERS", "make_searcher"]

logger = logging.getLogger(__name__)
# Samples drawn to find one config that meets the constraints before giving up.
_MAX_REJECTIONS = 1000


class _PicklingSearcher(Searcher):
    """Saves and restores its whole state with pickle, so a resumed study continues the search."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__setstate__(pickle.load(f))

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class GridSearcher(_PicklingSearcher):
    """Every point of the spec's grid, in order."""

    def __init__(self, spec: StudySpec, capacity: int, metric: str, mode: str) -> None:
        super().__init__(metric=metric, mode=mode)
        self._points = [p for p in spec.grid() if spec.allows(p, capacity)]
        self._next = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._next >= len(self._points):
            return Searcher.FINISHED
        self._next += 1
        return dict(self._points[self._next - 1])

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        return None


class OptunaSearcher(_PicklingSearcher):
    """Optuna ask/tell behind Ray Tune: TPE for bayes, uniform sampling for random.

    Configs that break a constraint are told to Optuna as failed and sampled again; trials that
    fail (OOM, start-up, crash) are told as failed too, so TPE stops favouring their region.
    """

    def __init__(
        self,
        spec: StudySpec,
        capacity: int,
        metric: str,
        mode: str,
        sampler_factory: Callable[[int | None], optuna.samplers.BaseSampler],
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self._spec = spec
        self._capacity = capacity
        self._sampler_factory = sampler_factory
        self._live: dict[str, int] = {}
        self._study = self._new_study([])

    def _new_study(self, trials: list[optuna.trial.FrozenTrial]) -> optuna.Study:
        study = optuna.create_study(
            direction="maximize" if self._mode == "max" else "minimize",
            sampler=self._sampler_factory(self._spec.search.seed),
        )
        study.add_trials(trials)
        return study

    def _distributions(self) -> Iterator[tuple[str, optuna.distributions.BaseDistribution]]:
        for name in sorted(self._spec.space):
            spec = self._spec.space[name]
            if not isinstance(spec, RangeSpec):
                yield name, optuna.distributions.CategoricalDistribution(spec)
            elif spec.is_int:
                yield (
                    name,
                    optuna.distributions.IntDistribution(
                        int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1)
                    ),
                )
            else:
                yield (
                    name,
                    optuna.distributions.FloatDistribution(
                        spec.low, spec.high, log=spec.log, step=spec.step
                    ),
                )

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        distributions = dict(self._distributions())
        for _ in range(_MAX_REJECTIONS):
            trial = self._study.ask(distributions)
            if self._spec.allows(trial.params, self._capacity):
                self._live[trial_id] = trial.number
                # Stepped float ranges come back as 0.7999999999999999; flags want 0.8.
                return {
                    k: round(v, 10) if isinstance(v, float) else v for k, v in trial.params.items()
                }
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
        logger.warning("no config meeting the constraints in %d samples", _MAX_REJECTIONS)
        return Searcher.FINISHED

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        number = self._live.pop(trial_id, None)
        if number is None:
            return
        value = (result or {}).get(self._metric)
        if error or value is None or (result or {}).get("failed"):
            self._study.tell(number, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(number, float(value))

    def __getstate__(self) -> dict[str, Any]:
        # Optuna's in-memory study holds locks; keep its finished trials and rebuild it.
        state = dict(self.__dict__)
        state["_study"] = [t for t in self._study.trials if t.state.is_finished()]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        trials = state.pop("_study")
        self.__dict__.update(state)
        self._live = {}
        self._study = self._new_study(trials)


def _random_sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def _tpe_sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, multivariate=True, group=True)


SEARCHERS: dict[str, Callable[[StudySpec, int, str, str], Searcher]] = {
    "grid": GridSearcher,
    "random": functools.partial(OptunaSearcher, sampler_factory=_random_sampler),
    "bayes": functools.partial(OptunaSearcher, sampler_factory=_tpe_sampler),
}


def make_searcher(spec: StudySpec, *, capacity: int, metric: str, mode: str) -> Searcher:
    """The searcher ``spec.search.algorithm`` names."""
    return SEARCHERS[spec.search.algorithm](spec, capacity, metric, mode)
