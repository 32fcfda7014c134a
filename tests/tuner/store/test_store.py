"""Store: studies, trials and events round-trip; errors say what to do."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tuner.exceptions import DuplicateStudyError, StoreError, StudyNotFoundError
from tuner.store import StudyState, TrialRecord, TrialState, open_store


def test_round_trip_and_counts(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a.db")
    store.create_study("s-1", "s", {"name": "s"})
    with pytest.raises(DuplicateStudyError, match="already exists"):
        store.create_study("s-1", "s", {})
    store.set_study_state("s-1", StudyState.RUNNING)
    for number, state in enumerate([TrialState.COMPLETED, TrialState.RUNNING], start=1):
        store.upsert_trial(TrialRecord(study_id="s-1", trial_id=f"t{number}", number=number,
                                       params={"tp_size": number}, state=state, gpus=number,
                                       levels=[{"concurrency": 4}], score=10.0 * number))
    study = store.get_study("s-1")
    assert (study.state, study.n_trials, study.n_finished) == (StudyState.RUNNING, 2, 1)
    assert study.started_at is not None and study.ended_at is None
    assert [t.params for t in store.list_trials("s-1")] == [{"tp_size": 1}, {"tp_size": 2}]
    assert store.next_trial_number("s-1") == 3
    first = store.add_event("s-1", "trial_started", "t1", {"number": 1})
    store.add_event("s-1", "trial_finished", "t1", {"score": 10.0})
    assert [e.kind for e in store.events("s-1", after=first)] == ["trial_finished"]
    with pytest.raises(StoreError, match="stop it before deleting"):
        store.delete_study("s-1")
    store.set_study_state("s-1", StudyState.COMPLETED)
    assert store.get_study("s-1").ended_at is not None
    store.delete_study("s-1")
    with pytest.raises(StudyNotFoundError, match="autotuner list"):
        store.get_study("s-1")
    assert store.events("s-1") == [] and store.list_trials("s-1") == []


def test_readers_in_other_threads_see_writes(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a.db")
    store.create_study("s-1", "s", {})
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(len(store.list_studies())))
    thread.start()
    thread.join()
    assert seen == [1]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    open_store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="newer autotuner"):
        open_store(path)
