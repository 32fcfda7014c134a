"""``StudyManager``: runs the service's studies in background threads, a few at a time."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tuner
from service._errors import StudyBusyError
from tuner.events import EventKind
from tuner.exceptions import SpecError, StoreError, StudyRunningError, TunerError
from tuner.spec import StudySpec, spec_from_dict
from tuner.store import LEASE_S, Store, StudyRecord, StudyState, open_store

__all__ = ["Driver", "StudyManager"]

logger = logging.getLogger(__name__)

# Longest a study waits for the one starting before it to reach its first trial.
_START_GATE_S = 300.0
# Events after which the next study may start: a trial runs, or the study ended.
_STARTED = (EventKind.TRIAL_STARTED, EventKind.STUDY_FINISHED)


class Driver:
    """What the manager needs from the tuner library; the default delegates to :mod:`tuner`.

    Tests replace it with a fake that writes records and events without Ray or servers.
    Every method may be called from any thread.
    """

    def create_study(self, spec: StudySpec, *, store: Store) -> StudyRecord:
        """Record a queued study (see :func:`tuner.create_study`)."""
        return tuner.create_study(spec, store=store)

    def run_study(
        self, spec: StudySpec, *, store: Store, study_id: str, resume: bool, stop: tuner.StopToken
    ) -> None:
        """Run a study to its end, blocking (see :func:`tuner.run_study`)."""
        tuner.run_study(spec, store=store, study_id=study_id, resume=resume, stop=stop)

    def interrupt_orphans(self, store: Store) -> list[str]:
        """Mark studies whose driver is gone, sweep their servers (see
        :func:`tuner.interrupt_orphans`)."""
        return tuner.interrupt_orphans(store)

    def init_ray(self, *, gpus: int, dashboard: bool) -> str | None:
        """Start Ray once for the process; the dashboard URL, if any (see ``tuner.init_ray``)."""
        return tuner.init_ray(gpus=gpus, dashboard=dashboard)

    def launch_text(self, spec: StudySpec, params: dict[str, Any]) -> str:
        """The exact launch command or manifest of a config (see :func:`tuner.launch_text`)."""
        return tuner.launch_text(spec, params)


@dataclass
class _Job:
    study_id: str
    spec: StudySpec
    resume: bool
    thread: threading.Thread | None = None
    stop: tuner.StopToken = field(default_factory=tuner.StopToken)


class StudyManager:
    """Queues the studies submitted to the service and runs up to ``max_running`` at once.

    Each running study is a :func:`tuner.run_study` call in its own thread; all of them share
    the process's one Ray instance, whose pool of ``gpus`` units bounds how many trials run at
    once across studies. The store stays the one source of truth: the manager only adds the
    queue (in memory) and the state changes the driver cannot make (a study stopped before it
    started, a study whose driver raised). Thread-safe.

    It also watches for studies whose driver is gone (this service killed before, or a CLI
    run killed meanwhile): at start-up and every ``LEASE_S`` seconds it marks them
    ``interrupted`` and sweeps their servers; with ``resume_interrupted`` it then resumes them.

    Args:
        store_path: the SQLite store.
        gpus: GPU units of the Ray pool the service starts.
        ray_dashboard: start Ray's dashboard (needs the ``ray[default]`` extra).
        max_running: studies that run at the same time; later ones wait, queued.
        driver: the tuner functions to use; tests pass a fake.
        resume_interrupted: resume the interrupted studies found, instead of offering it.
    """

    def __init__(self, store_path: Path, *, gpus: int = 8, ray_dashboard: bool = False,
                 max_running: int = 2, driver: Driver | None = None,
                 resume_interrupted: bool = False) -> None:
        self.store: Store = open_store(store_path)
        self.datasets_dir = tuner.datasets_dir(Path(store_path))
        self.gpus = gpus
        self.ray_dashboard = ray_dashboard
        self.max_running = max(1, max_running)
        self.driver = driver or Driver()
        self.ray_started = False
        self.ray_error: str | None = None
        self.dashboard_url: str | None = None
        self._lock = threading.RLock()
        self._ray_lock = threading.Lock()
        self._start_gate = threading.Lock()
        self._forever = threading.Event()  # never set: the Ray owner thread waits on it
        self._queue: list[_Job] = []
        self._running: dict[str, _Job] = {}
        self._closed = False
        self.resume_interrupted = resume_interrupted
        self._watching = threading.Event()  # set: the orphan watch should end
        self._recover_queued()
        self.recovered = threading.Event()  # set once the first orphan watch is done
        threading.Thread(target=self._watch_orphans, daemon=True, name="orphan-watch").start()

    # --- queries ---------------------------------------------------------------------------

    def is_active(self, study_id: str) -> bool:
        """Whether the study is queued or running in this service."""
        with self._lock:
            return study_id in self._running or any(j.study_id == study_id for j in self._queue)

    def is_running_here(self, study_id: str) -> bool:
        """Whether a thread of this service runs the study (it may still be starting)."""
        with self._lock:
            return study_id in self._running

    def active_ids(self) -> list[str]:
        """Studies running in this service, then the queued ones in order."""
        with self._lock:
            return [*self._running, *(j.study_id for j in self._queue)]

    def warm_up(self) -> None:
        """Start Ray now rather than with the first study.

        Raises:
            TunerError: Ray cannot start.
        """
        self._ensure_ray()

    # --- commands --------------------------------------------------------------------------

    def submit(self, spec: StudySpec) -> StudyRecord:
        """Record a new study and queue it to run.

        Raises:
            SpecError: its ``workload.dataset`` lies outside :attr:`datasets_dir`.
            StoreError: the store cannot be written.
        """
        self._check_dataset(spec)
        record = self.driver.create_study(spec, store=self.store)
        self._enqueue(_Job(record.study_id, spec, resume=False))
        return self.store.get_study(record.study_id)

    def resume(self, study_id: str) -> StudyRecord:
        """Queue a stopped, failed or interrupted study to run again; finished trials stay.

        Raises:
            StudyNotFoundError: no such study.
            StudyBusyError: it is running or queued already, or it completed.
        """
        record = self.store.get_study(study_id)
        if self.is_active(study_id) or record.state == StudyState.RUNNING:
            raise StudyBusyError(f"study '{study_id}' is {record.state.value} already; "
                                 "wait for it to end or stop it first",
                                 study_id=study_id, state=record.state.value)
        if record.state == StudyState.COMPLETED:
            raise StudyBusyError(f"study '{study_id}' completed; nothing is left to run. "
                                 "Submit a new study to search further",
                                 study_id=study_id, state=record.state.value)
        spec = spec_from_dict(record.spec, source=f"study {study_id}")
        self._check_dataset(spec)
        self.store.set_study_state(study_id, StudyState.QUEUED, "waiting to resume")
        self._enqueue(_Job(study_id, spec, resume=True))
        return self.store.get_study(study_id)

    def _check_dataset(self, spec: StudySpec) -> None:
        """Refuse a prompt file outside the datasets folder: the service would read any file
        its user can, for whoever may submit a study, and send it to a model server."""
        dataset = spec.workload.dataset
        if dataset is None:
            return
        folder = self.datasets_dir.resolve()
        if not Path(dataset.path).resolve().is_relative_to(folder):
            raise SpecError(
                f"workload.dataset.path: this service reads prompt files from {folder} only; "
                "copy the file there and name it relative to that folder",
                [("workload.dataset.path", f"outside the service's datasets folder {folder}")],
            )

    def stop(self, study_id: str) -> StudyRecord:
        """Stop a running study (its servers go) or drop a queued one. Idempotent.

        Raises:
            StudyNotFoundError: no such study.
            StudyBusyError: it runs in another process (e.g. the CLI), out of this one's reach.
        """
        with self._lock:
            queued = next((j for j in self._queue if j.study_id == study_id), None)
            if queued is not None:
                self._queue.remove(queued)
                self._end_unstarted(study_id, StudyState.STOPPED, "stopped before it started")
                return self.store.get_study(study_id)
            job = self._running.get(study_id)
            if job is not None:
                job.stop.set()
                return self.store.get_study(study_id)
        record = self.store.get_study(study_id)
        if record.state == StudyState.RUNNING:
            raise StudyBusyError(f"study '{study_id}' runs in another process; stop it there "
                                 "(Ctrl-C in its terminal)", study_id=study_id,
                                 state=record.state.value)
        if record.state == StudyState.QUEUED:  # queued by a service that is gone
            self._end_unstarted(study_id, StudyState.STOPPED, "stopped before it started")
        return self.store.get_study(study_id)

    def delete(self, study_id: str) -> None:
        """Delete a study that is not running, with its trials and events.

        Raises:
            StudyNotFoundError: no such study.
            StudyBusyError: it is running.
        """
        with self._lock:
            record = self.store.get_study(study_id)
            if study_id in self._running or record.state == StudyState.RUNNING:
                raise StudyBusyError(f"study '{study_id}' is running; stop it, then delete it",
                                     study_id=study_id, state=record.state.value)
            self._queue = [j for j in self._queue if j.study_id != study_id]
            self.store.delete_study(study_id)

    def shutdown(self, timeout: float = 60.0) -> None:
        """Drop the queue, stop every running study and wait for them to end (servers gone)."""
        with self._lock:
            self._closed = True
            self._queue.clear()
            jobs = list(self._running.values())
        self._watching.set()
        for job in jobs:
            self.stop(job.study_id)
        deadline = time.monotonic() + timeout
        for job in jobs:
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))

    # --- internals -------------------------------------------------------------------------

    def _enqueue(self, job: _Job) -> None:
        with self._lock:
            if self._closed:
                raise StudyBusyError("the service is shutting down; submit again after restart",
                                     study_id=job.study_id, state="queued")
            if self.is_active(job.study_id):
                raise StudyBusyError(f"study '{job.study_id}' is queued or running already",
                                     study_id=job.study_id, state="running")
            self._queue.append(job)
            self._dispatch()

    def _dispatch(self) -> None:
        with self._lock:
            while self._queue and len(self._running) < self.max_running and not self._closed:
                job = self._queue.pop(0)
                job.thread = threading.Thread(target=self._run, args=(job,), daemon=True,
                                              name=f"study-{job.study_id}")
                self._running[job.study_id] = job
                job.thread.start()

    def _run(self, job: _Job) -> None:
        gate = threading.Event()  # set once this study's first trial started, or it ended
        try:
            self._ensure_ray()
            after = self._last_seq(job.study_id)
            # Ray Tune's global registry is not thread-safe while an experiment starts: let
            # one study at a time get to its first trial.
            self._start_gate.acquire()
            threading.Thread(target=self._open_gate_when_started, args=(job, gate, after),
                             daemon=True, name=f"gate-{job.study_id}").start()
            if job.stop.is_set():
                self._end_unstarted(job.study_id, StudyState.STOPPED, "stopped before it started")
                return
            self.driver.run_study(job.spec, store=self.store, study_id=job.study_id,
                                  resume=job.resume, stop=job.stop)
        except StudyRunningError:  # another live process runs it: its state is that one's
            logger.warning("study %s runs in another process", job.study_id)
        except TunerError as e:
            self._fail(job.study_id, str(e))
        except Exception as e:  # a bug: keep the service up, record it on the study
            logger.exception("study %s crashed", job.study_id)
            self._fail(job.study_id, f"{type(e).__name__}: {e}")
        finally:
            gate.set()
            with self._lock:
                self._running.pop(job.study_id, None)
                self._dispatch()
            self.store.close()  # this thread's connection

    def _open_gate_when_started(self, job: _Job, ended: threading.Event, after: int) -> None:
        """Release the start gate once the study's first trial started (or it ended)."""
        try:
            deadline = time.monotonic() + _START_GATE_S
            while not ended.wait(0.2) and time.monotonic() < deadline:
                events = self.store.events(job.study_id, after=after, limit=200)
                if any(e.kind in _STARTED for e in events):
                    break
                after = events[-1].seq if events else after
        except StoreError:
            logger.exception("cannot follow the start of study %s", job.study_id)
        finally:
            self._start_gate.release()
            self.store.close()

    def _last_seq(self, study_id: str) -> int:
        events = self.store.events(study_id, after=0, limit=1_000_000)
        return events[-1].seq if events else 0

    def _ensure_ray(self) -> None:
        """Start Ray once, from a thread that lives as long as the process.

        Ray starts its GCS and raylet with a parent-death signal, which Linux ties to the
        *thread* that started them: started from a study's thread, Ray would die with that
        study. So a dedicated thread starts it and then stays.
        """
        with self._ray_lock:
            if self.ray_started:
                return
            outcome: dict[str, BaseException] = {}
            ready = threading.Event()
            threading.Thread(target=self._own_ray, args=(ready, outcome), daemon=True,
                             name="ray-owner").start()
            ready.wait()
            if "error" in outcome:
                raise outcome["error"]
            self.ray_started = True

    def _own_ray(self, ready: threading.Event, outcome: dict[str, BaseException]) -> None:
        try:
            try:
                self.dashboard_url = self.driver.init_ray(gpus=self.gpus,
                                                          dashboard=self.ray_dashboard)
            except TunerError as e:
                if not self.ray_dashboard:
                    raise
                # no ray[default]: run without the dashboard, and say why in the UI
                self.ray_error = str(e)
                self.dashboard_url = self.driver.init_ray(gpus=self.gpus, dashboard=False)
        except BaseException as e:  # handed to the study that asked; the next one retries
            outcome["error"] = e
            ready.set()
            return
        ready.set()
        self._forever.wait()  # keep this thread, and so Ray, alive until the process ends

    def _recover_queued(self) -> None:
        """Studies queued in a service that is gone are interrupted: nothing will run them."""
        for record in self.store.list_studies():
            if record.state == StudyState.QUEUED:
                self.store.set_study_state(record.study_id, StudyState.INTERRUPTED,
                                           "queued in a service that stopped; resume it")

    def _watch_orphans(self) -> None:
        first = True
        while first or not self._watching.wait(LEASE_S):
            try:
                found = self.driver.interrupt_orphans(self.store)
                if self.resume_interrupted:
                    for study_id in found:
                        self.resume(study_id)
            except TunerError:
                logger.exception("cannot look for interrupted studies")
            finally:
                if first:
                    first = False
                    self.recovered.set()
        self.store.close()

    def _end_unstarted(self, study_id: str, state: StudyState, message: str) -> None:
        try:
            if not self.store.get_study(study_id).state.is_finished():
                tuner.finish_study(self.store, study_id, state, message)
        except StoreError:
            logger.exception("cannot record the end of study %s", study_id)

    def _fail(self, study_id: str, message: str) -> None:
        """A study whose driver raised: record the failure, unless the driver did."""
        try:
            state = self.store.get_study(study_id).state
            if not state.is_finished() and state != StudyState.RUNNING:
                tuner.finish_study(self.store, study_id, StudyState.FAILED, message)
        except StoreError:
            logger.exception("cannot record the failure of study %s", study_id)
