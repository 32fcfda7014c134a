"""Store: studies, trials and events round-trip; errors say what to do."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from tuner.events import EventKind
from tuner.exceptions import (
    DuplicateStudyError,
    FinishedTrialError,
    StoreError,
    StudyNotFoundError,
    StudyRunningError,
)
from tuner.store import StudyState, TrialReason, TrialRecord, TrialState, open_store, this_driver
from tuner.store._driver import LEASE_S, _identity

# A level as every version so far has stored it: genai-bench's figures, nothing newer.
LEVEL = {"scenario": "D(8,8)", "concurrency": 4, "num_requests": 10, "num_completed": 10,
         "num_errors": 0, "error_rate": 0.0, "duration_s": 1.0, "output_throughput": 80.0,
         "input_throughput": 80.0, "total_throughput": 160.0, "requests_per_second": 10.0,
         **{f"{m}_{p}_ms": 1.0 for m in ("ttft", "tpot", "e2e")
            for p in ("mean", "p50", "p90", "p95", "p99")}}


def test_round_trip_and_counts(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a.db")
    store.create_study("s-1", "s", {"name": "s"})
    with pytest.raises(DuplicateStudyError, match="already exists"):
        store.create_study("s-1", "s", {})
    store.claim_study("s-1", this_driver())
    for number, state in enumerate([TrialState.COMPLETED, TrialState.RUNNING], start=1):
        store.upsert_trial(TrialRecord(study_id="s-1", trial_id=f"t{number}", number=number,
                                       params={"tp_size": number}, state=state, gpus=number,
                                       levels=[LEVEL], score=10.0 * number))
    study = store.get_study("s-1")
    assert (study.state, study.n_trials, study.n_finished) == (StudyState.RUNNING, 2, 1)
    assert study.started_at is not None and study.ended_at is None
    assert [t.params for t in store.list_trials("s-1")] == [{"tp_size": 1}, {"tp_size": 2}]
    assert store.next_trial_number("s-1") == 3
    first = store.add_event("s-1", EventKind.TRIAL_STARTED, "t1", {"number": 1})
    store.add_event("s-1", EventKind.TRIAL_FINISHED, "t1", {"score": 10.0})
    assert [e.kind for e in store.events("s-1", after=first)] == [EventKind.TRIAL_FINISHED]
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


def _trial(number: int, state: TrialState, **fields: object) -> TrialRecord:
    return TrialRecord(study_id="s-1", trial_id=f"t{number}", number=number,
                       params={"tp_size": number}, state=state, gpus=1, **fields)


def test_a_finished_trial_never_changes(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a.db")
    store.create_study("s-1", "s", {})
    done = _trial(1, TrialState.COMPLETED, score=614.6)
    store.upsert_trial(done)
    with pytest.raises(FinishedTrialError, match="cannot change"):
        store.upsert_trial(done.model_copy(update={"score": 511.6, "state": TrialState.RUNNING}))
    with pytest.raises(FinishedTrialError):
        store.delete_trial("s-1", "t1")
    assert store.get_trial("s-1", "t1") == done
    store.upsert_trial(_trial(2, TrialState.RUNNING))  # unfinished ones may change and go
    store.upsert_trial(_trial(2, TrialState.FAILED, reason=TrialReason.CRASHED))
    assert store.get_trial("s-1", "t2").reason == TrialReason.CRASHED  # type: ignore[union-attr]


def test_a_running_study_without_its_driver_reads_interrupted(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a.db")
    store.create_study("s-1", "s", {})
    with pytest.raises(ValueError, match="claim_study"):
        store.set_study_state("s-1", StudyState.RUNNING)
    # A driver on this host that is gone: a pid that exists, with another start time.
    gone = this_driver().rsplit(":", 1)[0] + ":12.00"
    store.claim_study("s-1", gone)
    store.upsert_trial(_trial(1, TrialState.COMPLETED, score=1.0))
    store.upsert_trial(_trial(2, TrialState.RUNNING))
    assert store.get_study("s-1").state == StudyState.INTERRUPTED
    assert [t.state for t in store.list_trials("s-1")] == [
        TrialState.COMPLETED, TrialState.INTERRUPTED]
    assert store.mark_interrupted("s-1", "driver lost")
    assert not store.mark_interrupted("s-1", "twice")  # written down once
    study = store.get_study("s-1")
    assert (study.state, study.message) == (StudyState.INTERRUPTED, "driver lost")
    store.claim_study("s-1", this_driver())  # a resume takes it over
    assert store.get_study("s-1").state == StudyState.RUNNING


def test_a_live_driver_keeps_its_study(tmp_path: Path) -> None:
    import os

    store = open_store(tmp_path / "a.db")
    store.create_study("s-1", "s", {})
    parent = _identity(os.getppid())  # another live process on this host
    store.claim_study("s-1", parent)
    assert store.get_study("s-1").state == StudyState.RUNNING
    with pytest.raises(StudyRunningError, match="another process"):
        store.claim_study("s-1", this_driver())
    assert not store.mark_interrupted("s-1", "no")
    assert not store.heartbeat("s-1", this_driver())  # not ours to beat
    store.release_study("s-1", parent)
    assert store.get_study("s-1").state == StudyState.INTERRUPTED  # nobody runs it now


def test_a_driver_on_another_host_lives_by_its_heartbeat(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a.db")
    store.create_study("s-1", "s", {})
    store.claim_study("s-1", "other-host:123:1.00")
    assert store.get_study("s-1").state == StudyState.RUNNING
    with sqlite3.connect(tmp_path / "a.db") as db:
        db.execute("UPDATE studies SET heartbeat_at=heartbeat_at-?", (LEASE_S + 1,))
    assert store.get_study("s-1").state == StudyState.INTERRUPTED
    assert store.heartbeat("s-1", "other-host:123:1.00")
    assert store.get_study("s-1").state == StudyState.RUNNING


def test_a_schema_2_store_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '2');
            CREATE TABLE studies (study_id TEXT PRIMARY KEY, name TEXT NOT NULL,
                spec TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL,
                started_at REAL, ended_at REAL, message TEXT, best_trial_id TEXT);
            CREATE TABLE trials (study_id TEXT NOT NULL, trial_id TEXT NOT NULL,
                number INTEGER NOT NULL, params TEXT NOT NULL, state TEXT NOT NULL,
                gpus INTEGER NOT NULL, score REAL, reason TEXT, message TEXT, levels TEXT NOT NULL,
                timings TEXT NOT NULL, started_at REAL, ended_at REAL, confirms TEXT,
                PRIMARY KEY (study_id, trial_id));
            INSERT INTO studies VALUES ('s-1', 's', '{}', 'running', 1.0, 1.0, NULL, NULL, NULL);
            INSERT INTO trials VALUES ('s-1', 't1', 1, '{}', 'failed', 1, NULL, 'crash', 'x',
                '[]', '{}', 1.0, 2.0, NULL);
        """)
    store = open_store(path)
    assert store.get_study("s-1").state == StudyState.INTERRUPTED  # its driver is long gone
    assert store.list_trials("s-1")[0].reason == TrialReason.CRASHED


def test_levels_stored_before_the_server_view_read_as_typed_levels(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a.db")
    store.create_study("s-1", "s", {})
    store.upsert_trial(TrialRecord(study_id="s-1", trial_id="t1", number=1, params={},
                                   state=TrialState.RUNNING, gpus=1))
    db = sqlite3.connect(tmp_path / "a.db")  # the row as an older version wrote it
    db.execute("UPDATE trials SET levels=? WHERE trial_id='t1'", (json.dumps([LEVEL]),))
    db.commit()
    db.close()
    (level,) = store.get_trial("s-1", "t1").levels  # type: ignore[union-attr]
    assert level.output_throughput == 80.0 and level.server is None and level.flags() == {}
