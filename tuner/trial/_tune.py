"""A study's Ray Tune experiments: the search, then the confirmation of the winner.

``tuner.study.run_study`` owns the study's life (lease, sweep, final state); this module owns
what runs inside it: the searcher and scheduler from the spec, the trainable with its
resources, and the driver-side callbacks that record and tear down every trial.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ray import tune

from tuner import backends, objective
from tuner._lifecycle import StopToken
from tuner.events import EventKind
from tuner.exceptions import NotSupportedError
from tuner.search import (
    GpuBudgetLimiter,
    LadderScheduler,
    ListSearcher,
    Prescreen,
    judge,
    make_searcher,
    prescreen,
    top_trials,
)
from tuner.spec import StudySpec
from tuner.store import Store
from tuner.trial._callbacks import StoreCallback, TeardownCallback
from tuner.trial._runner import OBJECTIVE_KEY, TrialRunner
from tuner.trial._stopper import StudyStopper

__all__ = ["StudyRun"]

logger = logging.getLogger(__name__)


class StudyRun:
    """One run of a study's driver: the search, then the confirmation, as Ray Tune
    experiments over the same backend, store and stop token."""

    def __init__(
        self,
        spec: StudySpec,
        backend: backends.Backend,
        store: Store,
        study_id: str,
        workdir: Path,
        stop: StopToken,
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.store = store
        self.study_id = study_id
        self.workdir = workdir
        self.stop = stop
        # Each run gets its own Tune experiments: a resumed study never restores Tune's saved
        # state (it lags behind the store, which knows what finished).
        self._tag = time.strftime("%Y%m%d-%H%M%S")
        self._mode = objective.direction(spec.objective)
        self._stuck: dict[str, str] = {}

    def search(self, reruns: dict[str, dict[str, Any]]) -> None:
        """The search: the ``reruns`` (an earlier driver's unfinished trials) first, then
        what the spec's searcher proposes beyond the trials finished already."""
        capacity = self.backend.gpu_capacity()
        measured = [
            t.params
            for t in self.store.list_trials(self.study_id)
            if t.state.is_finished() and t.confirms is None
        ]
        searcher = make_searcher(
            self.spec,
            capacity=capacity,
            metric=OBJECTIVE_KEY,
            mode=self._mode,
            prescreen=self._prescreen(capacity),
            measured=measured,
            first=list(reruns.values()),
        )
        # Early stopping ranks trials by the score alone; with a Pareto front, a trial that
        # cannot win on throughput may still hold the best latency.
        scheduler = (
            LadderScheduler(self._mode, self.spec.workload.concurrency)
            if self.spec.search.early_stopping and self.spec.objective.pareto is None
            else None
        )
        self._execute(
            "search",
            searcher=searcher,
            num_samples=max(1, self.spec.max_trials - len(measured)),
            scheduler=scheduler,
            time_budget_s=self.spec.search.time_budget_s,
            reruns=reruns,
        )

    def _prescreen(self, capacity: int) -> Prescreen | None:
        if self.spec.search.prescreen is None:
            return None
        try:
            result = prescreen(self.spec, capacity, workdir=self.workdir)
        except NotSupportedError as e:  # a study runs fine without one
            logger.warning("%s", e)
            self.store.add_event(
                self.study_id, EventKind.PRESCREEN_SKIPPED, data={"reason": str(e)}
            )
            return None
        self.store.add_event(self.study_id, EventKind.PRESCREEN, data=result.summary())
        return result

    def confirm(self, elapsed_s: float) -> None:
        """Re-run the top configurations on fresh deployments and let the verdict pick the
        best. Counts confirmation runs already stored, so a resumed study only runs the
        missing ones."""
        options = self.spec.search.confirm
        if not options.enabled:
            return
        trials = self.store.list_trials(self.study_id)
        top = top_trials(trials, self.spec)
        if not top:
            return
        done = {
            t.trial_id: sum(
                1 for r in trials if r.confirms == t.trial_id and r.state.is_finished()
            )
            for t in top
        }
        runs = [t.params for t in top for _ in range(options.repeats - done[t.trial_id])]
        budget = self.spec.search.time_budget_s
        remaining = None if budget is None else budget - elapsed_s
        if runs and (remaining is None or remaining > 0):
            self.store.add_event(
                self.study_id,
                EventKind.CONFIRMATION_STARTED,
                data={"trials": [t.trial_id for t in top], "repeats": options.repeats},
            )
            self._execute(
                "confirm",
                searcher=ListSearcher(runs, OBJECTIVE_KEY, self._mode),
                num_samples=len(runs),
                scheduler=None,
                time_budget_s=remaining,
                confirms={t.trial_id: t.params for t in top},
            )
        if self.stop.is_set():
            return
        verdict = judge(self.store.list_trials(self.study_id), self.spec)
        if verdict is None:
            return
        if verdict.winner is not None:
            self.store.set_best(self.study_id, verdict.winner)
        self.store.add_event(self.study_id, EventKind.CONFIRMATION, data=verdict.to_dict())

    def _execute(
        self,
        phase: str,
        *,
        searcher: Any,
        num_samples: int,
        scheduler: Any,
        time_budget_s: float | None,
        confirms: dict[str, dict[str, Any]] | None = None,
        reruns: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Run up to ``num_samples`` trials the searcher proposes, and record them.

        Args:
            phase: ``search`` or ``confirm``, for the experiment's name.
            searcher: a Ray Tune searcher.
            num_samples: trials to run at most.
            scheduler: a Tune scheduler (early stopping), or None.
            time_budget_s: wall time after which no trial starts and running ones stop.
            confirms: see :class:`StoreCallback`.
            reruns: see :class:`StoreCallback`.
        """
        spec, backend = self.spec, self.backend
        capacity = backend.gpu_capacity()
        stopper = StudyStopper(spec.trial_timeout_s, self.stop)
        store_callback = StoreCallback(
            self.store,
            self.study_id,
            self._mode,
            confirms=confirms,
            reruns=reruns,
            early_stops=scheduler.stopped if scheduler is not None else None,
            timeouts=stopper.timed_out,
            stuck=stopper.stuck,
            pending_timeout_s=spec.search.pending_timeout_s,
        )
        trainable = tune.with_resources(
            tune.with_parameters(TrialRunner, backend=backend), backend.resources
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=GpuBudgetLimiter(
                    searcher, self._max_concurrent(), capacity, spec.gpus_needed
                ),
                scheduler=scheduler,
                num_samples=num_samples,
                # Safe: a trial deploys in its first step, on the actor Tune finally runs it on.
                reuse_actors=True,
                time_budget_s=time_budget_s,
                trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
            ),
            run_config=tune.RunConfig(
                name=f"{phase}-{self._tag}",
                storage_path=str(self.workdir),
                verbose=0,
                stop=stopper,
                callbacks=[store_callback, TeardownCallback(backend)],
                checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
                # Only lost actors and nodes reach Tune as errors (the runner returns failures).
                failure_config=tune.FailureConfig(max_failures=spec.search.node_loss_retries),
            ),
        )
        self._stuck = stopper.stuck
        tuner.fit()
        self._raise_if_stuck()

    def _max_concurrent(self) -> int:
        """Trials at once: ``search.max_concurrent``, else as many as the GPUs hold."""
        fit = self.backend.gpu_capacity() // self.spec.min_gpus()
        return self.spec.search.max_concurrent or max(1, fit)

    def _raise_if_stuck(self) -> None:
        if self._stuck:
            trial_id, why = next(iter(self._stuck.items()))
            raise NotSupportedError(f"trial {trial_id} could not be placed: {why}")
