"""Ray Tune searchers built from a spec: grid, random and bayes (Optuna TPE).

Each proposes only configs that meet the spec's constraints and fit the GPUs, so no trial slot
is spent on a config that could never run.
"""

from __future__ import annotations

import functools
import logging
import pickle
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from ray.tune.search import Searcher

from tuner.spec import RangeSpec, StudySpec

__all__ = ["SEARCHERS", "make_searcher"]

logger = logging.getLogger(__name__)
# Optuna announces every in-memory study it creates; the searchers create one per study.
optuna.logging.set_verbosity(optuna.logging.WARNING)
# Samples drawn to find one new config that meets the constraints, before giving up; the
# first few come from the study's own sampler, the rest are uniform draws.
_MAX_REJECTIONS = 2000
_TPE_ATTEMPTS = 20


class _PicklingSearcher(Searcher):
    """Saves and restores its whole state with pickle, so a resumed study continues the search."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__setstate__(pickle.load(f))

    def rekey(self, old_trial_id: str, new_trial_id: str) -> None:
        """A suggestion made for one trial id now belongs to another (see GpuBudgetLimiter)."""

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
        self._seen: set[tuple[tuple[str, Any], ...]] = set()
        self._study = self._new_study([])
        self._fallback = optuna.create_study(
            sampler=optuna.samplers.RandomSampler(seed=spec.search.seed))

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
        for attempt in range(_MAX_REJECTIONS):
            # TPE can get stuck on an infeasible or already-measured region: after a few
            # rejections, draw uniformly instead and hand the draw to the main study.
            source = self._study if attempt < _TPE_ATTEMPTS else self._fallback
            trial = source.ask(distributions)
            params = {k: round(v, 10) if isinstance(v, float) else v
                      for k, v in trial.params.items()}  # stepped floats: 0.8, not 0.79999..
            usable = (self._spec.allows(params, self._capacity)
                      and _key(params) not in self._seen)
            if not usable or source is self._fallback:
                source.tell(trial, state=optuna.trial.TrialState.FAIL)
            if not usable:
                continue
            if source is self._fallback:
                self._study.enqueue_trial(params)
                trial = self._study.ask(distributions)
            self._seen.add(_key(params))
            self._live[trial_id] = trial.number
            return params
        logger.info("no unmeasured config meets the constraints: the search space is exhausted")
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
        state["_fallback"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        trials = state.pop("_study")
        self.__dict__.update(state)
        self._live = {}
        self._study = self._new_study(trials)
        self._fallback = optuna.create_study(
            sampler=optuna.samplers.RandomSampler(seed=self._spec.search.seed))


def _key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


def _random_sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def _tpe_sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # multivariate TPE is "experimental" since Optuna 2.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, multivariate=True)


SEARCHERS: dict[str, Callable[[StudySpec, int, str, str], Searcher]] = {
    "grid": GridSearcher,
    "random": functools.partial(OptunaSearcher, sampler_factory=_random_sampler),
    "bayes": functools.partial(OptunaSearcher, sampler_factory=_tpe_sampler),
}


def make_searcher(spec: StudySpec, *, capacity: int, metric: str, mode: str) -> Searcher:
    """The searcher ``spec.search.algorithm`` names."""
    return SEARCHERS[spec.search.algorithm](spec, capacity, metric, mode)
