"""Running a study: Ray Tune over the backend's deployments, recorded in the store."""

from __future__ import annotations

import logging
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner import backends
from tuner._home import study_workdir
from tuner._lifecycle import DriverLease, StopToken, finish_study
from tuner._nodes import node_units, sweep_everywhere
from tuner._ray import init_ray
from tuner._result import StudyResult
from tuner.events import EventKind, StudyStarted
from tuner.exceptions import NotSupportedError, TunerError
from tuner.store import Store, StudyRecord, StudyState, TrialState

if TYPE_CHECKING:
    from tuner.spec import StudySpec

__all__ = ["check_placement", "create_study", "run_study"]

logger = logging.getLogger(__name__)


def create_study(spec: StudySpec, *, store: Store) -> StudyRecord:
    """Record a new queued study with a fresh id (``<name>-<6 hex>``)."""
    study_id = f"{spec.name}-{secrets.token_hex(3)}"
    return store.create_study(study_id, spec.name, spec.model_dump(mode="json"))


def run_study(
    spec: StudySpec,
    *,
    store: Store,
    study_id: str | None = None,
    resume: bool = False,
    ray_address: str | None = None,
    workdir: Path | None = None,
    stop: StopToken | None = None,
) -> StudyResult:
    """Run (or resume) a study to its end and return what it measured.

    Three phases, each recorded as events: the twin pre-screen (``search.prescreen``; in the
    driver, before any GPU is used), the search itself (Ray Tune, stopping hopeless trials
    early on the concurrency ladder with ``search.early_stopping``), and the confirmation of
    the winner (``search.confirm``: the top configurations re-run on fresh deployments; the
    verdict sets the study's best trial).

    While it runs, this process holds the study's lease in the store (so a second driver is
    refused, and readers see ``interrupted`` if this one dies). Trial failures are recorded,
    not raised. Ctrl-C (in the main thread) or ``stop`` ends the study as ``stopped`` with
    every deployment torn down.

    A resumed study keeps every finished trial as it is and runs each trial its dead driver
    left unfinished exactly once more (first, under the same trial number), then goes on with
    the search, so it ends with as many trials as a run without the crash.

    Args:
        spec: the validated study spec.
        store: where the study, its trials and events are recorded.
        study_id: a study created earlier (``create_study``); default: create one now.
        resume: continue a study whose driver died or that was stopped.
        ray_address: run trials on this Ray cluster (default ``RAY_ADDRESS``, else a local one).
        workdir: folder for server logs, benchmark results and Ray's experiment state;
            default: ``studies/<study id>`` next to the store.
        stop: set it (from any thread) to stop the study.

    Raises:
        NotSupportedError: the backend cannot run this spec, or Ray lacks the GPUs.
        SpecError: ``search.derived`` does not fit the space.
        StudyNotFoundError: ``study_id`` is unknown.
        StudyRunningError: another live process runs this study.
    """
    if study_id is None:
        study_id = create_study(spec, store=store).study_id
    stop = stop or StopToken()
    store.get_study(study_id)
    workdir = workdir or study_workdir(store.path, study_id)
    backend = backends.make(spec, study_id=study_id, workdir=workdir)
    with DriverLease(store, study_id):
        try:
            _check_supported(spec, backend)
            _check_search(spec, backend)
            if not backend.IN_PROCESS:  # in-process trials need no Ray, nodes or GPU units
                init_ray(gpus=backend.gpu_capacity(), address=ray_address)
                check_placement(spec, backend)
        except TunerError as e:
            finish_study(store, study_id, StudyState.FAILED, str(e))
            raise
        swept = sweep_everywhere(backend)
        reruns = _unfinished(store, study_id) if resume else {}
        started: StudyStarted = {"resumed": resume, "swept": swept, "reruns": sorted(reruns),
                                 "cautions": spec.cautions()}
        store.add_event(study_id, EventKind.STUDY_STARTED, data=started)
        message = None
        clock = time.monotonic()
        # Ray and Tune load only when a study runs
        from tuner.trial._inprocess import InProcessRun
        from tuner.trial._tune import StudyRun

        kind = InProcessRun if backend.IN_PROCESS else StudyRun
        run = kind(spec, backend, store, study_id, workdir, stop)
        with _stop_on_sigint(stop):
            try:
                run.search(reruns)
                if not stop.is_set():
                    run.confirm(time.monotonic() - clock)
            except Exception as e:  # a bug or Ray itself failing: the study fails, servers go
                logger.exception("study %s failed", study_id)
                message = f"{type(e).__name__}: {e}"
            finally:
                sweep_everywhere(backend)
        state = (
            StudyState.FAILED
            if message
            else StudyState.STOPPED
            if stop.is_set()
            else StudyState.COMPLETED
        )
        return finish_study(store, study_id, state, message)


def _unfinished(store: Store, study_id: str) -> dict[str, dict[str, Any]]:
    """The search trials an earlier driver left unfinished (id -> config), to run once more.

    Unfinished confirmation runs are dropped instead: the confirmation counts the finished
    ones and runs what is missing.
    """
    reruns = {}
    for trial in store.list_trials(study_id):
        if trial.state.is_finished():
            continue
        if trial.confirms is not None:
            store.delete_trial(study_id, trial.trial_id)
            continue
        reruns[trial.trial_id] = trial.params
        if trial.state != TrialState.INTERRUPTED:  # its driver is gone: say so until re-run
            store.upsert_trial(trial.model_copy(update={"state": TrialState.INTERRUPTED}))
    return reruns


def _check_supported(spec: StudySpec, backend: backends.Backend) -> None:
    for feature, reason in backend.UNSUPPORTED.items():
        if feature in spec.fixed or feature in spec.space:
            raise NotSupportedError(f"backend '{backend.NAME}' cannot set {feature}: {reason}")
    backend.preflight()


def _check_search(spec: StudySpec, backend: backends.Backend) -> None:
    from tuner.search import Space

    Space(spec, backend.gpu_capacity())  # raises SpecError on derived flags that do not fit


def check_placement(spec: StudySpec, backend: backends.Backend) -> None:
    """Every config must fit on one node: Ray places a trial's units on a single node, and a
    trial that fits none would wait forever.

    Raises:
        NotSupportedError: the pool is too small, or a config fits no node.
    """
    resource = backend.GPU_RESOURCE
    units = node_units(resource)
    pool, largest = sum(units.values()), max(units.values(), default=0)
    need = spec.min_gpus()
    if pool < need:
        raise NotSupportedError(
            f"the Ray cluster has {pool} '{resource}' units but the smallest config needs "
            f"{need}; start Ray with more, or use a smaller tp_size"
        )
    capacity = backend.gpu_capacity()
    sizes = [
        tp * dp
        for tp in spec.int_values("tp_size")
        for dp in spec.int_values("dp_size")
        if tp * dp <= capacity
    ]
    if max(sizes, default=0) > largest:
        shown = ", ".join(str(n) for n in sorted(units.values(), reverse=True))
        raise NotSupportedError(
            f"a config of the space needs {max(sizes)} '{resource}' units on one node, but the "
            f"largest node has {largest} (nodes: {shown}); drop the larger tp_size/dp_size "
            f"values, or set backend.gpus to {largest} to search only configs that fit a node"
        )


class _stop_on_sigint:
    """Ctrl-C stops the study cleanly (main thread only; Tune's own handler is off)."""

    def __init__(self, stop: StopToken) -> None:
        self._stop = stop
        self._previous: Any = None

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self._stop.is_set():  # a second Ctrl-C: stop waiting
            raise KeyboardInterrupt
        logger.warning("stopping the study: tearing down its servers")
        self._stop.set()

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
