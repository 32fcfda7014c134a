"""A study's life outside the search itself: who runs it, how it is asked to stop, how it ends.

The one place that finishes a study (:func:`finish_study`) and the one place that declares a
study's driver gone (:func:`interrupt_orphans`); the CLI, the service and :func:`run_study`
call these, and never write a study's state or closing event themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import Any

from tuner import backends
from tuner._home import study_workdir
from tuner._nodes import sweep_everywhere
from tuner._result import StudyResult
from tuner.events import EventKind, StudyFinished, StudyInterrupted
from tuner.spec import spec_from_dict
from tuner.store import HEARTBEAT_S, Store, StudyState, TrialReason, TrialState, this_driver

__all__ = ["DriverLease", "StopToken", "finish_study", "interrupt_orphans"]

logger = logging.getLogger(__name__)


class StopToken:
    """A request to stop one run of a study: no new trials, running ones end, servers go.

    Set it from any thread (a signal handler, an API request); the run reads it. Ray Tune
    pickles its stopper with the experiment: a pickled token comes back unset, since a stop
    request never outlives the process that made it.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        """Ask the run to stop (idempotent)."""
        self._event.set()

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._event.is_set()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._event = threading.Event()


class DriverLease:
    """This process runs the study while the lease is held: it claims the study in the store
    (refusing a study another live driver runs), beats a heartbeat every few seconds, and lets
    go at the end, so any reader can tell a running study from one whose driver is gone.

    Raises (on enter):
        StudyRunningError: another live process runs the study.
    """

    def __init__(self, store: Store, study_id: str) -> None:
        self._store = store
        self._study_id = study_id
        self._driver = this_driver()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> DriverLease:
        self._store.claim_study(self._study_id, self._driver)
        self._thread = threading.Thread(
            target=self._beat, daemon=True, name=f"lease-{self._study_id}"
        )
        self._thread.start()
        return self

    def _beat(self) -> None:
        try:
            while not self._done.wait(HEARTBEAT_S):
                if not self._store.heartbeat(self._study_id, self._driver):
                    logger.error("study %s was taken over by another driver", self._study_id)
                    return
        except Exception:  # the store is unreachable: readers will call the study interrupted
            logger.exception("heartbeat of study %s failed", self._study_id)
        finally:
            self._store.close()  # this thread's connection

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self._store.release_study(self._study_id, self._driver)


def finish_study(
    store: Store, study_id: str, state: StudyState, message: str | None = None
) -> StudyResult:
    """End a study in ``state``: its trials still waiting or running become ``stopped``,
    and the closing ``study_finished`` event carries the best trial, importance and front.

    The caller must be the study's driver, or know that it has none (a study that never
    started, or whose driver raised).
    """
    now = time.time()
    for trial in store.list_trials(study_id):
        if trial.state in (TrialState.PENDING, TrialState.RUNNING):
            store.upsert_trial(
                trial.model_copy(
                    update={
                        "state": TrialState.STOPPED,
                        "reason": TrialReason.STOPPED,
                        "ended_at": now,
                    }
                )
            )
    store.set_study_state(study_id, state, message)
    result = StudyResult.load(store, study_id)
    best = result.best
    payload: StudyFinished = {
        "state": state.value,
        "best_trial_id": result.study.best_trial_id,
        "best_score": best.score if best else None,
        "message": message,
        "importance": result.importance,
        "pareto": result.pareto,
    }
    store.add_event(study_id, EventKind.STUDY_FINISHED, data=payload)
    return result


def interrupt_orphans(store: Store) -> list[str]:
    """Write down every running study whose driver is gone as ``interrupted``, and tear down
    the servers it left (on this host, and wherever the backend can reach by label).

    Returns:
        The ids of the studies found interrupted now.
    """
    found = []
    for record in store.list_studies():
        if record.state != StudyState.INTERRUPTED:
            continue
        message = "its driver stopped without ending it (killed, or its host was lost)"
        if not store.mark_interrupted(record.study_id, message):
            continue  # written down before, or its driver came back
        swept = sweep_study(store, record.study_id, record.spec)
        payload: StudyInterrupted = {"message": message, "swept": swept}
        store.add_event(record.study_id, EventKind.STUDY_INTERRUPTED, data=payload)
        logger.warning("study %s was interrupted; resume it to go on", record.study_id)
        found.append(record.study_id)
    return found


def sweep_study(store: Store, study_id: str, spec: dict[str, Any]) -> dict[str, list[str]]:
    """Remove the deployments a study's dead driver left, on every node this process can
    reach; their names by node (logged, not raised, when the backend cannot be reached: the
    next resume sweeps again)."""
    try:
        backend = backends.make(
            spec_from_dict(spec), study_id=study_id, workdir=study_workdir(store.path, study_id)
        )
        return sweep_everywhere(backend)
    except Exception:
        logger.exception("cannot sweep the servers of study %s", study_id)
        return {}
