"""The study manager: Ray's owner thread, the start gate, queue limits."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from service import StudyManager, planned_trials
from tests.api.conftest import wait_for
from tests.api.fakes import QUICK_SPEC, FakeDriver
from tuner.events import EventKind
from tuner.spec import StudySpec, spec_from_dict
from tuner.store import StudyState, TrialRecord, TrialState, open_store, this_driver


class RecordingDriver(FakeDriver):
    """Remembers the thread that started Ray and how many studies were starting at once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ray_thread: threading.Thread | None = None
        self.starting = 0
        self.most_starting = 0
        self.lock = threading.Lock()

    def init_ray(self, *, gpus: int, dashboard: bool) -> str | None:
        self.ray_thread = threading.current_thread()
        return super().init_ray(gpus=gpus, dashboard=dashboard)

    def run_study(self, spec: StudySpec, **kwargs: Any) -> None:
        with self.lock:
            self.starting += 1
            self.most_starting = max(self.most_starting, self.starting)
        time.sleep(0.1)  # what Tune does before the first trial
        with self.lock:
            self.starting -= 1
        super().run_study(spec, **kwargs)


def test_ray_outlives_the_study_that_started_it(tmp_path: Path) -> None:
    # Linux ties Ray's parent-death signal to the starting thread: it must not be a study's
    driver = RecordingDriver()
    manager = StudyManager(tmp_path / "s.db", driver=driver)
    first = manager.submit(spec_from_dict(QUICK_SPEC)).study_id
    wait_for(lambda: not manager.is_active(first))
    assert driver.ray_thread is not None and driver.ray_thread.is_alive()
    assert driver.ray_thread.name == "ray-owner"
    second = manager.submit(spec_from_dict(QUICK_SPEC)).study_id
    wait_for(lambda: not manager.is_active(second))
    assert driver.ray_inits == 1
    assert manager.store.get_study(second).state == StudyState.COMPLETED


def test_studies_start_one_at_a_time(tmp_path: Path) -> None:
    driver = RecordingDriver()
    manager = StudyManager(tmp_path / "s.db", driver=driver, max_running=3)
    ids = [manager.submit(spec_from_dict(QUICK_SPEC)).study_id for _ in range(3)]
    wait_for(lambda: not any(manager.is_active(i) for i in ids))
    assert driver.most_starting == 1
    assert {manager.store.get_study(i).state for i in ids} == {StudyState.COMPLETED}


def test_ray_failure_fails_the_study_and_is_retried(tmp_path: Path) -> None:
    from tuner.exceptions import NotSupportedError

    class NoRay(FakeDriver):
        calls = 0

        def init_ray(self, *, gpus: int, dashboard: bool) -> str | None:
            self.calls += 1
            if self.calls == 1:
                raise NotSupportedError("Ray cannot start: no room")
            return None

    manager = StudyManager(tmp_path / "s.db", driver=NoRay())
    first = manager.submit(spec_from_dict(QUICK_SPEC)).study_id
    wait_for(lambda: not manager.is_active(first))
    record = manager.store.get_study(first)
    assert record.state == StudyState.FAILED and "no room" in (record.message or "")
    second = manager.submit(spec_from_dict(QUICK_SPEC)).study_id
    wait_for(lambda: not manager.is_active(second))
    assert manager.store.get_study(second).state == StudyState.COMPLETED


def test_shutdown_stops_running_studies(tmp_path: Path) -> None:
    hold = threading.Event()
    manager = StudyManager(tmp_path / "s.db", driver=FakeDriver(hold=hold), max_running=1)
    running = manager.submit(spec_from_dict(QUICK_SPEC)).study_id
    queued = manager.submit(spec_from_dict(QUICK_SPEC)).study_id
    wait_for(lambda: manager.store.get_study(running).state == StudyState.RUNNING)
    manager.shutdown(timeout=10)
    assert manager.store.get_study(running).state == StudyState.STOPPED
    assert manager.store.get_study(queued).state == StudyState.QUEUED  # resumable later
    assert manager.active_ids() == []


def test_planned_trials_count_the_confirmation_runs() -> None:
    spec = spec_from_dict({**QUICK_SPEC, "search": {"algorithm": "random", "max_trials": 5}})
    confirm = spec.search.confirm
    assert planned_trials(spec) == 5 + confirm.top_k * confirm.repeats
    assert planned_trials(spec_from_dict(QUICK_SPEC)) == 4


def _orphan(store_path: Path, state: TrialState = TrialState.RUNNING) -> str:
    """A study left as a killed service leaves it: running, its driver gone, a trial open."""
    store = open_store(store_path)
    study_id = FakeDriver().create_study(spec_from_dict(QUICK_SPEC), store=store).study_id
    store.claim_study(study_id, this_driver().rsplit(":", 1)[0] + ":12.00")  # a dead process
    store.upsert_trial(TrialRecord(study_id=study_id, trial_id="t001", number=1,
                                   params={"tp_size": 1, "max_running_requests": 8},
                                   state=TrialState.COMPLETED, gpus=1, score=42.0))
    store.upsert_trial(TrialRecord(study_id=study_id, trial_id="t002", number=2,
                                   params={"tp_size": 1, "max_running_requests": 32},
                                   state=state, gpus=1))
    store.close()
    return study_id


def test_a_restarted_service_finds_its_interrupted_studies(tmp_path: Path) -> None:
    study_id = _orphan(tmp_path / "s.db")
    manager = StudyManager(tmp_path / "s.db", driver=FakeDriver())
    assert manager.recovered.wait(10)
    study = manager.store.get_study(study_id)
    assert study.state == StudyState.INTERRUPTED and "driver" in (study.message or "")
    kinds = [e.kind for e in manager.store.events(study_id)]
    assert kinds == [EventKind.STUDY_INTERRUPTED]
    manager.resume(study_id)  # offered, not refused with 409
    wait_for(lambda: not manager.is_active(study_id))
    assert manager.store.get_study(study_id).state == StudyState.COMPLETED
    assert manager.driver.runs[-1] == (study_id, True)  # type: ignore[attr-defined]
    assert manager.store.list_trials(study_id)[0].score == 42.0  # finished trials stay
    manager.shutdown()


def test_interrupted_studies_may_be_resumed_on_start_up(tmp_path: Path) -> None:
    study_id = _orphan(tmp_path / "s.db")
    manager = StudyManager(tmp_path / "s.db", driver=FakeDriver(), resume_interrupted=True)
    wait_for(lambda: manager.store.get_study(study_id).state == StudyState.COMPLETED)
    manager.shutdown()


def test_a_study_queued_in_a_dead_service_is_interrupted(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    queued = FakeDriver().create_study(spec_from_dict(QUICK_SPEC), store=store).study_id
    manager = StudyManager(tmp_path / "s.db", driver=FakeDriver())
    assert manager.store.get_study(queued).state == StudyState.INTERRUPTED
    manager.shutdown()


def test_a_stop_reaches_a_study_still_starting(tmp_path: Path) -> None:
    hold = threading.Event()
    driver = RecordingDriver(hold=hold)
    manager = StudyManager(tmp_path / "s.db", driver=driver)
    study_id = manager.submit(spec_from_dict(QUICK_SPEC)).study_id
    manager.stop(study_id)  # before the driver even started: the token waits for it
    hold.set()
    wait_for(lambda: not manager.is_active(study_id))
    assert manager.store.get_study(study_id).state == StudyState.STOPPED
    assert [e.kind for e in manager.store.events(study_id)].count(EventKind.STUDY_FINISHED) == 1
