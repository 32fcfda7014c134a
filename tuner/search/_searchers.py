"""Ray Tune searchers built from a spec: grid, random and bayes (Optuna TPE).

Each proposes only configs that meet the spec's constraints and fit the GPUs, so no trial slot
is spent on a config that could never run, and never proposes a config twice.
"""

from __future__ import annotations

import functools
import logging
import pickle
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna
from ray.tune.search import Searcher

from tuner.search._space import Space, config_key
from tuner.spec import StudySpec
from tuner.trial import sentinel

if TYPE_CHECKING:
    from tuner.search._prescreen import Prescreen

__all__ = ["SEARCHERS", "ListSearcher", "OptunaSearcher", "make_searcher"]

logger = logging.getLogger(__name__)
# Optuna announces every in-memory study it creates; the searchers create one per study.
optuna.logging.set_verbosity(optuna.logging.WARNING)
# Samples drawn to find one new config that meets the constraints, before giving up; the
# first few come from the study's own sampler, the rest are uniform draws.
_MAX_REJECTIONS = 2000
_TPE_ATTEMPTS = 20
# The SLO constraint of a trial that never served (OOM, start-up, crash): worse than any SLO
# miss, so TPE ranks it below every trial that at least started.
FAILED_EXCESS = 1e6
_SLO_CONSTRAINT = "slo"


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


class ListSearcher(_PicklingSearcher):
    """Given configs, in order: grid search, and the confirmation runs after a search."""

    def __init__(self, points: list[dict[str, Any]], metric: str, mode: str) -> None:
        super().__init__(metric=metric, mode=mode)
        self._points = points
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

    def skip(self, measured: list[dict[str, Any]]) -> None:
        """Never propose these configs (a resumed study measured them already)."""
        done = {config_key(c) for c in measured}
        self._points = [p for p in self._points if config_key(p) not in done]

    def prioritize(self, configs: list[dict[str, Any]]) -> None:
        """Propose these configs first (a resumed study's interrupted trials), once each."""
        keys = {config_key(c) for c in configs}
        rest = [p for p in self._points if config_key(p) not in keys]
        self._points = [dict(c) for c in configs] + rest


class OptunaSearcher(_PicklingSearcher):
    """Optuna ask/tell behind Ray Tune: TPE for bayes, uniform sampling for random.

    The SLO is a constraint, not a penalty: each trial is told with its ``slo_excess`` as an
    Optuna constraint, and TPE (c-TPE) learns from the trials which region meets the SLO.
    Trials that fail (OOM, start-up, crash, benchmark) are told as *complete* with the worst
    value and a violated constraint: Optuna's samplers skip FAIL trials, so only this keeps TPE
    from proposing their neighbours again. A trial stopped before the top of its ladder is
    told as FAIL: it carries only a lower bound of its score. With ``objective.pareto`` the
    study has two objectives, the score and that latency (multi-objective TPE).

    A pre-screen's seeds are proposed first, and the configs it dropped never. Configs that
    break a spec constraint are told as FAIL (they carry no information) and sampled again.
    """

    def __init__(
        self,
        spec: StudySpec,
        capacity: int,
        metric: str,
        mode: str,
        sampler_factory: Callable[[int | None], optuna.samplers.BaseSampler],
        prescreen: Prescreen | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self._space = Space(spec, capacity)
        self._sampler_factory = sampler_factory
        self._live: dict[str, optuna.Trial] = {}
        # Configs proposed already, or dropped by the pre-screen: never proposed (again).
        self._seen: set[tuple[tuple[str, Any], ...]] = set()
        self._queue: list[dict[str, Any]] = []
        if prescreen is not None:
            self._queue = [self._space.sampled_part(c) for c in prescreen.seeds]
            self._seen.update(config_key(self._space.sampled_part(c)) for c in prescreen.dropped)
        self._study = self._new_study([])
        self._fallback = self._new_fallback()

    def skip(self, measured: list[dict[str, Any]]) -> None:
        """Never propose these configs (a resumed study measured them already)."""
        done = {config_key(self._space.sampled_part(c)) for c in measured}
        self._seen.update(done)
        self._queue = [c for c in self._queue if config_key(c) not in done]

    def prioritize(self, configs: list[dict[str, Any]]) -> None:
        """Propose these configs first (a resumed study's interrupted trials), once each."""
        first = [self._space.sampled_part(c) for c in configs]
        keys = {config_key(c) for c in first}
        self._queue = first + [c for c in self._queue if config_key(c) not in keys]

    @property
    def study(self) -> optuna.Study:
        """The Optuna study of the measured trials (for importance and Pareto analysis)."""
        return self._study

    def _new_study(self, trials: list[optuna.trial.FrozenTrial]) -> optuna.Study:
        spec = self._space.spec
        minimize = optuna.study.StudyDirection.MINIMIZE
        directions = [optuna.study.StudyDirection.MAXIMIZE if self._mode == "max" else minimize]
        if spec.objective.pareto is not None:
            directions.append(minimize)
        study = optuna.create_study(
            directions=directions, sampler=self._sampler_factory(spec.search.seed)
        )
        study.add_trials(trials)
        return study

    def _new_fallback(self) -> optuna.Study:
        return optuna.create_study(
            sampler=optuna.samplers.RandomSampler(seed=self._space.spec.search.seed)
        )

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        distributions = self._space.distributions()
        while self._queue:
            seed = self._queue.pop(0)
            config = self._space.complete(seed)
            if config is None or config_key(seed) in self._seen:
                continue
            self._study.enqueue_trial(seed)
            return self._take(trial_id, self._study.ask(distributions), config)
        for attempt in range(_MAX_REJECTIONS):
            # TPE can get stuck on an infeasible or already-measured region: after a few
            # rejections, draw uniformly instead and hand the draw to the main study.
            source = self._study if attempt < _TPE_ATTEMPTS else self._fallback
            trial = source.ask(distributions)
            config = self._space.complete(trial.params)
            usable = (
                config is not None
                and config_key(self._space.sampled_part(config)) not in self._seen
            )
            if not usable or source is self._fallback:
                source.tell(trial, state=optuna.trial.TrialState.FAIL)
            if not usable:
                continue
            assert config is not None
            if source is self._fallback:
                self._study.enqueue_trial(self._space.sampled_part(config))
                trial = self._study.ask(distributions)
            return self._take(trial_id, trial, config)
        logger.info("no unmeasured config meets the constraints: the search space is exhausted")
        return Searcher.FINISHED

    def _take(self, trial_id: str, trial: optuna.Trial, config: dict[str, Any]) -> dict[str, Any]:
        self._seen.add(config_key(self._space.sampled_part(config)))
        self._live[trial_id] = trial
        return config

    def rekey(self, old_trial_id: str, new_trial_id: str) -> None:
        if old_trial_id in self._live:
            self._live[new_trial_id] = self._live.pop(old_trial_id)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        trial = self._live.pop(trial_id, None)
        if trial is None:
            return
        stopped = result is not None and not result.get("failed") and not result.get("ladder_done")
        if (result is None and not error) or stopped:
            # Removed before it ran, or stopped before the top of its ladder (early stopping,
            # a timeout, the user): its score so far only bounds the real one from below, and
            # told as a value it would steer TPE away from a region that may be good.
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        result = result or {}
        multi = len(self._study.directions) > 1
        value = result.get(str(self._metric))
        if error or result.get("failed") or value is None:
            trial.set_constraint(_SLO_CONSTRAINT, FAILED_EXCESS)
            values = [sentinel(str(self._mode)), *([sentinel("min")] if multi else [])]
        else:
            excess = result.get("slo_excess")
            if excess is not None:
                trial.set_constraint(_SLO_CONSTRAINT, float(excess))
            latency = result.get("latency")
            values = [float(value)]
            if multi:
                values.append(float(latency) if latency is not None else sentinel("min"))
        self._study.tell(trial, values)

    def __getstate__(self) -> dict[str, Any]:
        # Optuna's in-memory study and its live trials hold locks; keep the finished trials
        # and rebuild the study from them.
        state = dict(self.__dict__)
        state["_study"] = [t for t in self._study.trials if t.state.is_finished()]
        state["_fallback"] = None
        state["_live"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        trials = state.pop("_study")
        self.__dict__.update(state)
        self._study = self._new_study(trials)
        self._fallback = self._new_fallback()


def _random_sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def _tpe_sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # multivariate TPE is "experimental" since Optuna 2.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # constant_liar: trials running in parallel count as bad guesses, so concurrent
        # suggestions spread out instead of crowding one region.
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=5, multivariate=True, constant_liar=True
        )


def _grid(
    spec: StudySpec, capacity: int, metric: str, mode: str, prescreen: Prescreen | None = None
) -> Searcher:
    points = list(Space(spec, capacity).points())
    return ListSearcher(prescreen.order(points) if prescreen else points, metric, mode)


SEARCHERS: dict[str, Callable[..., Searcher]] = {
    "grid": _grid,
    "random": functools.partial(OptunaSearcher, sampler_factory=_random_sampler),
    "bayes": functools.partial(OptunaSearcher, sampler_factory=_tpe_sampler),
}


def make_searcher(
    spec: StudySpec,
    *,
    capacity: int,
    metric: str,
    mode: str,
    prescreen: Prescreen | None = None,
    measured: list[dict[str, Any]] | None = None,
    first: list[dict[str, Any]] | None = None,
) -> Searcher:
    """The searcher ``spec.search.algorithm`` names, seeded by a pre-screen if one ran,
    never proposing the ``measured`` configs (those a resumed study finished already), and
    proposing the ``first`` ones (those it left unfinished) before anything else.

    Raises:
        SpecError: ``search.derived`` does not fit the space (see :class:`Space`).
    """
    searcher = SEARCHERS[spec.search.algorithm](spec, capacity, metric, mode, prescreen=prescreen)
    if measured:
        searcher.skip(measured)
    if first:
        searcher.prioritize(first)
    return searcher
