"""Running a study: Ray Tune over the backend's deployments, recorded in the store."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner import backends, objective
from tuner._ray import init_ray, pool_size
from tuner.exceptions import NotSupportedError, TunerError
from tuner.spec import StudySpec, spec_from_dict
from tuner.store import Store, StudyRecord, StudyState, TrialRecord, TrialState

if TYPE_CHECKING:
    import pandas

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
    """What a study measured, as stored.

    Attributes:
        study: the study record (state, times, best trial id).
        trials: every trial, in creation order.
    """

    study: StudyRecord
    trials: list[TrialRecord]

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
        StudyNotFoundError: ``study_id`` is unknown.
    """
    if study_id is None:
        study_id = create_study(spec, store=store).study_id
    store.get_study(study_id)
    workdir = workdir or store.path.parent / "studies" / study_id
    backend = backends.make(spec, study_id=study_id, workdir=workdir)
    try:
        _check_supported(spec, backend)
        init_ray(gpus=backend.gpu_capacity(), address=ray_address)
        _check_pool(spec, backend)
    except TunerError as e:
        store.set_study_state(study_id, StudyState.FAILED, str(e))
        raise
    swept = backend.sweep()
    store.set_study_state(study_id, StudyState.RUNNING)
    store.add_event(study_id, "study_started", data={"resumed": resume, "swept": swept})
    _STOP_REQUESTS.discard(study_id)
    message = None
    with _stop_on_sigint(study_id):
        try:
            _tuner(spec, backend, store, study_id, workdir, resume).fit()
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


def _check_pool(spec: StudySpec, backend: backends.Backend) -> None:
    resource = "GPU" if backend.GPU_RESOURCE == "GPU" else backend.GPU_RESOURCE
    pool = pool_size(resource)
    need = spec.min_gpus()
    if pool < need:
        raise NotSupportedError(
            f"the Ray cluster has {pool} '{resource}' units but the smallest config needs "
            f"{need}; start Ray with more, or use a smaller tp_size"
        )


def _tuner(
    spec: StudySpec,
    backend: backends.Backend,
    store: Store,
    study_id: str,
    workdir: Path,
    resume: bool,
) -> Any:
    from ray import tune

    from tuner.search import GpuBudgetLimiter, make_searcher
    from tuner.trial import (
        OBJECTIVE_KEY,
        StoreCallback,
        StudyStopper,
        TeardownCallback,
        TrialRunner,
    )

    mode = objective.direction(spec.objective)
    trainable = tune.with_resources(
        tune.with_parameters(TrialRunner, backend=backend), backend.resources
    )
    experiment = workdir / "tune"
    if resume and tune.Tuner.can_restore(str(experiment)):
        return tune.Tuner.restore(
            str(experiment), trainable=trainable, resume_unfinished=True, resume_errored=True
        )
    capacity = backend.gpu_capacity()
    finished = sum(1 for t in store.list_trials(study_id) if t.state.is_finished())
    searcher = make_searcher(spec, capacity=capacity, metric=OBJECTIVE_KEY, mode=mode)
    max_concurrent = spec.search.max_concurrent or max(1, capacity // spec.min_gpus())
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=GpuBudgetLimiter(searcher, max_concurrent, capacity, spec.gpus_needed),
            num_samples=max(1, spec.max_trials - finished),
            reuse_actors=True,
            time_budget_s=spec.search.time_budget_s,
            trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str(workdir),
            verbose=0,
            stop=StudyStopper(study_id, spec.trial_timeout_s, _STOP_REQUESTS),
            callbacks=[StoreCallback(store, study_id, mode), TeardownCallback(backend)],
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
    record = store.get_study(study_id)
    best = store.get_trial(study_id, record.best_trial_id) if record.best_trial_id else None
    store.add_event(
        study_id,
        "study_finished",
        data={
            "state": state.value,
            "best_trial_id": record.best_trial_id,
            "best_score": best.score if best else None,
            "message": message,
        },
    )
    return StudyResult(study=store.get_study(study_id), trials=store.list_trials(study_id))


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
