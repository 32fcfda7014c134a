"""Running a study: Ray Tune over the backend's deployments, recorded in the store."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner import backends, objective
from tuner._ray import init_ray, pool_size
from tuner.exceptions import NotSupportedError, TunerError
from tuner.spec import StudySpec, spec_from_dict
from tuner.store import Store, StudyRecord, StudyState, TrialRecord, TrialState

if TYPE_CHECKING:
    import pandas

    from tuner.search import Prescreen, Verdict

__all__ = [
    "StudyResult",
    "create_study",
    "default_home",
    "launch_text",
    "request_stop",
    "run_study",
]

logger = logging.getLogger(__name__)
# Study ids asked to stop; read by each study's Tune stopper (which pickles by reference).
_STOP_REQUESTS: set[str] = set()


def default_home() -> Path:
    """Where the store and study folders live: ``$AUTOTUNER_HOME`` or ``~/.autotuner``."""
    return Path(os.environ.get("AUTOTUNER_HOME", Path.home() / ".autotuner"))


@dataclass(frozen=True)
class StudyResult:
    """What a study measured, as stored, and what follows from it.

    Load one with :meth:`load`; the API, the CLI and Python callers all read results this way.

    Attributes:
        study: the study record (state, times, best trial id).
        trials: the search's trials, in creation order.
        confirmations: the confirmation runs (re-runs of the top configurations after the
            search, each with ``confirms`` set to the trial it repeats).
    """

    study: StudyRecord
    trials: list[TrialRecord]
    confirmations: list[TrialRecord] = field(default_factory=list)

    @classmethod
    def load(cls, store: Store, study_id: str) -> StudyResult:
        """The stored result of a study, finished or not.

        Raises:
            StudyNotFoundError: there is no such study.
        """
        study = store.get_study(study_id)
        trials = store.list_trials(study_id)
        return cls(
            study=study,
            trials=[t for t in trials if t.confirms is None],
            confirmations=[t for t in trials if t.confirms is not None],
        )

    @property
    def spec(self) -> StudySpec:
        """The spec the study ran."""
        return spec_from_dict(self.study.spec)

    @property
    def best(self) -> TrialRecord | None:
        """The trial with the best score, or None when no trial met the SLO."""
        return next((t for t in self.trials if t.trial_id == self.study.best_trial_id), None)

    @property
    def best_launch(self) -> str | None:
        """The exact launch command (or manifest) of the best configuration."""
        best = self.best
        return launch_text(self.spec, best.params) if best else None

    @cached_property
    def pareto(self) -> list[dict[str, Any]]:
        """The Pareto front of a multi-objective study (``objective.pareto`` set): the operating
        points (trial x concurrency level meeting the SLO) that no other point beats on both
        the score and the latency, by ascending latency. Each has ``trial``, ``number``,
        ``params``, ``gpus``, ``concurrency``, ``score`` and ``latency``. Empty for a
        single-objective study."""
        spec = self.spec
        points = []
        for trial in self.trials:
            if trial.state == TrialState.FAILED:
                continue
            for point in objective.operating_points(trial.levels, spec.objective, trial.gpus):
                points.append(
                    {
                        "trial": trial.trial_id,
                        "number": trial.number,
                        "params": trial.params,
                        "gpus": trial.gpus,
                        **point,
                    }
                )
        return objective.pareto_front(points, spec.objective)

    @cached_property
    def confirmation(self) -> Verdict | None:
        """The verdict of the confirmation runs, or None when there were none."""
        from tuner.search import judge

        return judge([*self.trials, *self.confirmations], self.spec)

    @cached_property
    def importance(self) -> dict[str, float]:
        """How much each searched flag moved the score (summing to 1, largest first); empty
        with too few trials."""
        from tuner.search import param_importance

        return param_importance(self.spec, self.trials)

    @property
    def trials_df(self) -> pandas.DataFrame:
        """One row per trial: id, state, reason, score, params (``param.<name>``), and the best
        level's throughput and latencies."""
        import pandas

        rows = []
        for t in self.trials:
            row: dict[str, Any] = {
                "trial": t.trial_id,
                "number": t.number,
                "state": t.state.value,
                "reason": t.reason,
                "score": t.score,
                "gpus": t.gpus,
                "started_at": t.started_at,
                "ended_at": t.ended_at,
            }
            row.update({f"param.{k}": v for k, v in t.params.items()})
            row["levels"] = len(t.levels)
            rows.append(row)
        return pandas.DataFrame(rows)


def create_study(spec: StudySpec, *, store: Store) -> StudyRecord:
    """Record a new queued study with a fresh id (``<name>-<6 hex>``)."""
    study_id = f"{spec.name}-{secrets.token_hex(3)}"
    return store.create_study(study_id, spec.name, spec.model_dump(mode="json"))


def request_stop(study_id: str) -> None:
    """Ask a running study to stop: no new trials, running ones end, every server goes.

    Safe from any thread (a signal handler, an API request).
    """
    _STOP_REQUESTS.add(study_id)


def launch_text(spec: StudySpec, params: dict[str, Any]) -> str:
    """Exactly what a trial with these parameters runs: a command line or a manifest."""
    backend = backends.make(spec, study_id=spec.name, workdir=default_home() / "render")
    return backend.describe(spec.server_config(params))


def run_study(
    spec: StudySpec,
    *,
    store: Store,
    study_id: str | None = None,
    resume: bool = False,
    ray_address: str | None = None,
    workdir: Path | None = None,
) -> StudyResult:
    """Run (or resume) a study to its end and return what it measured.

    Three phases, each recorded as events: the twin pre-screen (``search.prescreen``; in the
    driver, before any GPU is used), the search itself (Ray Tune, stopping hopeless trials
    early on the concurrency ladder with ``search.early_stopping``), and the confirmation of
    the winner (``search.confirm``: the top configurations re-run on fresh deployments; the
    verdict sets the study's best trial).

    Trial failures are recorded, not raised. Ctrl-C (in the main thread) or
    :func:`request_stop` ends the study as ``stopped`` with every deployment torn down.

    Args:
        spec: the validated study spec.
        store: where the study, its trials and events are recorded.
        study_id: a study created earlier (``create_study``); default: create one now.
        resume: continue a study whose driver died; finished trials are not run again.
        ray_address: run trials on this Ray cluster (default ``RAY_ADDRESS``, else a local one).
        workdir: folder for server logs, benchmark results and Ray's experiment state;
            default: ``studies/<study id>`` next to the store.

    Raises:
        NotSupportedError: the backend cannot run this spec, or Ray lacks the GPUs.
        SpecError: ``search.derived`` does not fit the space.
        StudyNotFoundError: ``study_id`` is unknown.
    """
    if study_id is None:
        study_id = create_study(spec, store=store).study_id
    store.get_study(study_id)
    workdir = workdir or store.path.parent / "studies" / study_id
    backend = backends.make(spec, study_id=study_id, workdir=workdir)
    try:
        _check_supported(spec, backend)
        _check_search(spec, backend)
        init_ray(gpus=backend.gpu_capacity(), address=ray_address)
        _check_pool(spec, backend)
    except TunerError as e:
        store.set_study_state(study_id, StudyState.FAILED, str(e))
        raise
    swept = backend.sweep()
    if resume:  # trials the dead driver announced but never started are not trials
        for trial in store.list_trials(study_id):
            if trial.state == TrialState.PENDING and trial.started_at is None:
                store.delete_trial(study_id, trial.trial_id)
    store.set_study_state(study_id, StudyState.RUNNING)
    store.add_event(study_id, "study_started", data={"resumed": resume, "swept": swept})
    message = None
    started = time.monotonic()
    with _stop_on_sigint(study_id):
        try:
            _search_tuner(spec, backend, store, study_id, workdir, resume).fit()
            if study_id not in _STOP_REQUESTS:
                _confirm(spec, backend, store, study_id, workdir, time.monotonic() - started)
        except Exception as e:  # a bug or Ray itself failing: the study fails, servers go
            logger.exception("study %s failed", study_id)
            message = f"{type(e).__name__}: {e}"
        finally:
            backend.sweep()
    stopped = study_id in _STOP_REQUESTS
    _STOP_REQUESTS.discard(study_id)
    return _finish(store, study_id, message, stopped)


def _check_supported(spec: StudySpec, backend: backends.Backend) -> None:
    for feature, reason in backend.UNSUPPORTED.items():
        if feature in spec.fixed or feature in spec.space:
            raise NotSupportedError(f"backend '{backend.NAME}' cannot set {feature}: {reason}")


def _check_search(spec: StudySpec, backend: backends.Backend) -> None:
    from tuner.search import Space

    Space(spec, backend.gpu_capacity())  # raises SpecError on derived flags that do not fit


def _check_pool(spec: StudySpec, backend: backends.Backend) -> None:
    resource = "GPU" if backend.GPU_RESOURCE == "GPU" else backend.GPU_RESOURCE
    pool = pool_size(resource)
    need = spec.min_gpus()
    if pool < need:
        raise NotSupportedError(
            f"the Ray cluster has {pool} '{resource}' units but the smallest config needs "
            f"{need}; start Ray with more, or use a smaller tp_size"
        )


def _search_tuner(
    spec: StudySpec,
    backend: backends.Backend,
    store: Store,
    study_id: str,
    workdir: Path,
    resume: bool,
) -> Any:
    """The Tuner of the search itself: pre-screen seeds, early stopping, the spec's searcher."""
    from ray import tune

    from tuner.search import LadderScheduler, make_searcher
    from tuner.trial import OBJECTIVE_KEY

    experiment = workdir / "tune"
    if resume and tune.Tuner.can_restore(str(experiment)):
        return tune.Tuner.restore(
            str(experiment),
            trainable=_trainable(backend),
            resume_unfinished=True,
            resume_errored=True,
        )
    mode = objective.direction(spec.objective)
    capacity = backend.gpu_capacity()
    # Resuming without Tune's saved state: the searcher starts again, minus what was measured.
    measured = [
        t.params
        for t in store.list_trials(study_id)
        if t.state.is_finished() and t.confirms is None
    ]
    finished = len(measured)
    searcher = make_searcher(
        spec,
        capacity=capacity,
        metric=OBJECTIVE_KEY,
        mode=mode,
        prescreen=_prescreen(spec, capacity, store, study_id, workdir),
        measured=measured,
    )
    # Early stopping ranks trials by the score alone; with a Pareto front, a trial that
    # cannot win on throughput may still hold the best latency.
    scheduler = (
        LadderScheduler(mode, spec.workload.concurrency)
        if spec.search.early_stopping and spec.objective.pareto is None
        else None
    )
    return _tuner(
        spec,
        backend,
        store,
        study_id,
        workdir,
        name="tune",
        searcher=searcher,
        num_samples=max(1, spec.max_trials - finished),
        scheduler=scheduler,
        time_budget_s=spec.search.time_budget_s,
    )


def _prescreen(
    spec: StudySpec, capacity: int, store: Store, study_id: str, workdir: Path
) -> Prescreen | None:
    from tuner.search import prescreen

    if spec.search.prescreen is None:
        return None
    try:
        result = prescreen(spec, capacity, workdir=workdir)
    except NotSupportedError as e:  # a study runs fine without one
        logger.warning("%s", e)
        store.add_event(study_id, "prescreen_skipped", data={"reason": str(e)})
        return None
    store.add_event(study_id, "prescreen", data=result.summary())
    return result


def _confirm(
    spec: StudySpec,
    backend: backends.Backend,
    store: Store,
    study_id: str,
    workdir: Path,
    elapsed_s: float,
) -> None:
    """Re-run the top configurations on fresh deployments and let the verdict pick the best.

    Counts confirmation runs already stored, so a resumed study only runs the missing ones.
    """
    from tuner.search import ListSearcher, judge, top_trials
    from tuner.trial import OBJECTIVE_KEY

    options = spec.search.confirm
    if not options.enabled:
        return
    trials = store.list_trials(study_id)
    top = top_trials(trials, spec)
    if not top:
        return
    done = {
        t.trial_id: sum(1 for r in trials if r.confirms == t.trial_id and r.state.is_finished())
        for t in top
    }
    runs = [t.params for t in top for _ in range(options.repeats - done[t.trial_id])]
    budget = spec.search.time_budget_s
    remaining = None if budget is None else budget - elapsed_s
    if runs and (remaining is None or remaining > 0):
        store.add_event(
            study_id,
            "confirmation_started",
            data={"trials": [t.trial_id for t in top], "repeats": options.repeats},
        )
        searcher = ListSearcher(runs, OBJECTIVE_KEY, objective.direction(spec.objective))
        _tuner(
            spec,
            backend,
            store,
            study_id,
            workdir,
            name="confirm",
            searcher=searcher,
            num_samples=len(runs),
            scheduler=None,
            time_budget_s=remaining,
            confirms={t.trial_id: t.params for t in top},
        ).fit()
    if study_id in _STOP_REQUESTS:
        return
    verdict = judge(store.list_trials(study_id), spec)
    if verdict is None:
        return
    if verdict.winner is not None:
        store.set_best(study_id, verdict.winner)
    store.add_event(study_id, "confirmation", data=verdict.to_dict())


def _trainable(backend: backends.Backend) -> Any:
    from ray import tune

    from tuner.trial import TrialRunner

    return tune.with_resources(
        tune.with_parameters(TrialRunner, backend=backend), backend.resources
    )


def _tuner(
    spec: StudySpec,
    backend: backends.Backend,
    store: Store,
    study_id: str,
    workdir: Path,
    *,
    name: str,
    searcher: Any,
    num_samples: int,
    scheduler: Any,
    time_budget_s: float | None,
    confirms: dict[str, dict[str, Any]] | None = None,
) -> Any:
    from ray import tune

    from tuner.search import GpuBudgetLimiter
    from tuner.trial import StoreCallback, StudyStopper, TeardownCallback

    capacity = backend.gpu_capacity()
    max_concurrent = spec.search.max_concurrent or max(1, capacity // spec.min_gpus())
    store_callback = StoreCallback(
        store,
        study_id,
        objective.direction(spec.objective),
        confirms=confirms,
        early_stops=scheduler.stopped if scheduler is not None else None,
    )
    return tune.Tuner(
        _trainable(backend),
        tune_config=tune.TuneConfig(
            search_alg=GpuBudgetLimiter(searcher, max_concurrent, capacity, spec.gpus_needed),
            scheduler=scheduler,
            num_samples=num_samples,
            reuse_actors=True,
            time_budget_s=time_budget_s,
            trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(workdir),
            verbose=0,
            stop=StudyStopper(study_id, spec.trial_timeout_s, _STOP_REQUESTS),
            callbacks=[store_callback, TeardownCallback(backend)],
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


def _finish(store: Store, study_id: str, message: str | None, stopped: bool) -> StudyResult:
    now = time.time()
    for trial in store.list_trials(study_id):
        if not trial.state.is_finished():  # never got a result: cut off by a stop
            store.upsert_trial(
                trial.model_copy(
                    update={"state": TrialState.STOPPED, "reason": "stopped", "ended_at": now}
                )
            )
    state = (
        StudyState.FAILED if message else StudyState.STOPPED if stopped else StudyState.COMPLETED
    )
    store.set_study_state(study_id, state, message)
    result = StudyResult.load(store, study_id)
    best = result.best
    store.add_event(
        study_id,
        "study_finished",
        data={
            "state": state.value,
            "best_trial_id": result.study.best_trial_id,
            "best_score": best.score if best else None,
            "message": message,
            "importance": result.importance,
            "pareto": result.pareto,
        },
    )
    return result


class _stop_on_sigint:
    """Ctrl-C stops the study cleanly (main thread only; Tune's own handler is off)."""

    def __init__(self, study_id: str) -> None:
        self._study_id = study_id
        self._previous: Any = None

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self._study_id in _STOP_REQUESTS:  # a second Ctrl-C: stop waiting
            raise KeyboardInterrupt
        logger.warning("stopping study %s: tearing down its servers", self._study_id)
        request_stop(self._study_id)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
