"""The study manager: Ray's owner thread, the start gate, queue limits."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from api import StudyManager, planned_trials
from tests.api.conftest import wait_for
from tests.api.fakes import QUICK_SPEC, FakeDriver
from tuner.spec import StudySpec, spec_from_dict
from tuner.store import StudyState


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
