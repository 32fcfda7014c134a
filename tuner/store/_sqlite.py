"""``Store``: the SQLite file that is the one source of truth for studies, trials and events."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tuner.events import EventKind
from tuner.exceptions import (
    DuplicateStudyError,
    FinishedTrialError,
    StoreError,
    StudyNotFoundError,
    StudyRunningError,
)
from tuner.store._driver import driver_alive
from tuner.store._records import (
    EventRecord,
    StudyRecord,
    StudyState,
    TrialRecord,
    TrialState,
)
from tuner.store._schema import (
    LEVELS,
    LIVE_TRIAL,
    SCHEMA,
    SCHEMA_VERSION,
    STUDY_QUERY,
    study_from_row,
    trial_from_row,
    upgrade,
)

__all__ = ["SCHEMA_VERSION", "Store", "open_store"]

def open_store(path: str | Path) -> Store:
    """Open (creating if needed) the store at ``path``.

    Raises:
        StoreError: the file cannot be opened, or was written by a newer version.
    """
    return Store(Path(path))


class Store:
    """Studies, trials and events in one SQLite file.

    Readers (CLI, API, UI) may use it from any thread; a connection per thread is opened
    lazily. Trial results are written only by the driver side of a running study (its Ray Tune
    callback), so one writer per study; SQLite's WAL mode lets readers go on meanwhile.
    Returned records are frozen snapshots.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db().executescript(SCHEMA)
        except sqlite3.Error as e:
            raise StoreError(f"cannot set up store {path}: {e}; check the file") from e
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"{path} was written by a newer autotuner (schema {row[0]}); "
                    "upgrade autotuner or use another --store"
                )
            elif int(row[0]) < SCHEMA_VERSION:
                upgrade(db, int(row[0]))

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as e:
                raise StoreError(f"cannot open store {self.path}: {e}; check the path") from e
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as e:
            db.execute("ROLLBACK")
            raise StoreError(f"store {self.path}: {e}") from e
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # --- studies -------------------------------------------------------------------------

    def create_study(self, study_id: str, name: str, spec: dict[str, Any]) -> StudyRecord:
        """Add a queued study.

        Raises:
            DuplicateStudyError: the id is taken.
        """
        with self._tx() as db:
            if db.execute("SELECT 1 FROM studies WHERE study_id=?", (study_id,)).fetchone():
                raise DuplicateStudyError(
                    f"study '{study_id}' already exists; resume it or pick another name"
                )
            db.execute(
                "INSERT INTO studies (study_id, name, spec, state, created_at) VALUES (?,?,?,?,?)",
                (study_id, name, json.dumps(spec), StudyState.QUEUED.value, time.time()),
            )
        return self.get_study(study_id)

    def set_study_state(
        self,
        study_id: str,
        state: StudyState,
        message: str | None = None,
    ) -> None:
        """Move a study to ``state``, stamping start and end times.

        A study becomes ``running`` only through :meth:`claim_study`, which names its driver.
        """
        if state == StudyState.RUNNING:
            raise ValueError("a study runs only under a driver: use claim_study")
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE studies SET state=?, message=?, "
                "started_at=CASE WHEN ?='running' THEN coalesce(started_at, ?) "
                "ELSE started_at END,"
                " ended_at=CASE WHEN ? IN ('completed','stopped','failed','interrupted') THEN ? "
                "ELSE NULL END "
                "WHERE study_id=?",
                (state.value, message, state.value, now, state.value, now, study_id),
            )

    def claim_study(self, study_id: str, driver: str) -> None:
        """Make ``driver`` the process that runs the study, and mark it running.

        Raises:
            StudyNotFoundError: there is no such study.
            StudyRunningError: another live driver runs it.
        """
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT state, driver, heartbeat_at FROM studies WHERE study_id=?", (study_id,)
            ).fetchone()
            if row is None:
                raise StudyNotFoundError(
                    f"no study '{study_id}' in {self.path}; `autotuner list` shows the studies"
                )
            holder = row["driver"]
            if (
                row["state"] == StudyState.RUNNING
                and holder not in (None, driver)
                and driver_alive(holder, row["heartbeat_at"], now)
            ):
                raise StudyRunningError(
                    f"study '{study_id}' is running in another process ({holder}); stop it "
                    "there, or wait until it ends",
                    study_id=study_id,
                )
            db.execute(
                "UPDATE studies SET state='running', message=NULL, driver=?, heartbeat_at=?, "
                "started_at=coalesce(started_at, ?), ended_at=NULL WHERE study_id=?",
                (driver, now, now, study_id),
            )

    def heartbeat(self, study_id: str, driver: str) -> bool:
        """Say the study's driver is alive; False when another driver took the study over."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE studies SET heartbeat_at=? WHERE study_id=? AND driver=?",
                (time.time(), study_id, driver),
            )
        return cursor.rowcount == 1

    def release_study(self, study_id: str, driver: str) -> None:
        """The driver is done with the study (whatever its state now)."""
        with self._tx() as db:
            db.execute(
                "UPDATE studies SET driver=NULL, heartbeat_at=NULL "
                "WHERE study_id=? AND driver=?",
                (study_id, driver),
            )

    def mark_interrupted(self, study_id: str, message: str) -> bool:
        """Write down that a running study lost its driver: the study and its unfinished
        trials become ``interrupted``. False when its driver is alive (nothing changes).
        """
        with self._tx() as db:
            row = db.execute(
                "SELECT state, driver, heartbeat_at FROM studies WHERE study_id=?", (study_id,)
            ).fetchone()
            if row is None or row["state"] != StudyState.RUNNING:
                return False
            if row["driver"] is not None and driver_alive(row["driver"], row["heartbeat_at"]):
                return False
            db.execute(
                "UPDATE studies SET state='interrupted', message=?, driver=NULL, "
                "heartbeat_at=NULL, ended_at=? WHERE study_id=?",
                (message, time.time(), study_id),
            )
            db.execute(
                "UPDATE trials SET state='interrupted' WHERE study_id=? "
                "AND state IN ('pending','running')",
                (study_id,),
            )
        return True

    def get_study(self, study_id: str) -> StudyRecord:
        """The study with that id.

        A ``running`` study whose driver is gone reads as ``interrupted``, before anyone
        has written that down (see :meth:`mark_interrupted`).

        Raises:
            StudyNotFoundError: there is none.
        """
        row = self._db().execute(STUDY_QUERY + " WHERE s.study_id=?", (study_id,)).fetchone()
        if row is None:
            raise StudyNotFoundError(
                f"no study '{study_id}' in {self.path}; `autotuner list` shows the studies"
            )
        return study_from_row(row)

    def list_studies(self) -> list[StudyRecord]:
        """Every study, newest first."""
        rows = self._db().execute(STUDY_QUERY + " ORDER BY s.created_at DESC").fetchall()
        return [study_from_row(row) for row in rows]

    def delete_study(self, study_id: str) -> None:
        """Remove a study with its trials and events.

        Raises:
            StudyNotFoundError: there is none.
            StoreError: it is running.
        """
        if self.get_study(study_id).state == StudyState.RUNNING:
            raise StoreError(f"study '{study_id}' is running; stop it before deleting it")
        with self._tx() as db:
            db.execute("DELETE FROM studies WHERE study_id=?", (study_id,))

    # --- trials --------------------------------------------------------------------------

    def upsert_trial(self, record: TrialRecord) -> None:
        """Insert or replace a trial.

        Raises:
            FinishedTrialError: the stored trial is finished; finished trials never change.
        """
        with self._tx() as db:
            _write_trial(db, record)

    def add_trials(
        self,
        study_id: str,
        records: Sequence[TrialRecord],
        events: Sequence[tuple[EventKind, str | None, Mapping[str, Any]]] = (),
    ) -> None:
        """Write several trials and their events (kind, trial id, data) in one transaction:
        a batch of in-process trials costs one commit, not one per row.

        Raises:
            FinishedTrialError: one of them is stored finished already (nothing is written).
        """
        with self._tx() as db:
            for record in records:
                _write_trial(db, record)
            for kind, trial_id, data in events:
                _insert_event(db, study_id, kind, trial_id, data)

    def set_best(self, study_id: str, trial_id: str | None) -> None:
        """Record which trial is the best so far."""
        with self._tx() as db:
            db.execute("UPDATE studies SET best_trial_id=? WHERE study_id=?", (trial_id, study_id))

    def delete_trial(self, study_id: str, trial_id: str) -> None:
        """Remove one unfinished trial (one that never started, or one a resume re-runs).

        Raises:
            FinishedTrialError: the trial is finished; finished trials are never removed.
        """
        with self._tx() as db:
            row = db.execute(
                "SELECT state FROM trials WHERE study_id=? AND trial_id=?", (study_id, trial_id)
            ).fetchone()
            if row is not None and TrialState(row["state"]).is_finished():
                raise FinishedTrialError(
                    f"trial {trial_id} of study '{study_id}' is {row['state']}; finished "
                    "trials are kept",
                    trial_id=trial_id,
                )
            db.execute("DELETE FROM trials WHERE study_id=? AND trial_id=?", (study_id, trial_id))

    def get_trial(self, study_id: str, trial_id: str) -> TrialRecord | None:
        """One trial, or None."""
        row = (
            self._db()
            .execute("SELECT * FROM trials WHERE study_id=? AND trial_id=?", (study_id, trial_id))
            .fetchone()
        )
        return trial_from_row(row) if row else None

    def list_trials(
        self, study_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[TrialRecord]:
        """A study's trials in creation order, from number ``after + 1`` on, at most ``limit``
        of them; those a gone driver ran read as interrupted."""
        db = self._db()
        rows = db.execute(
            "SELECT * FROM trials WHERE study_id=? AND number>? ORDER BY number LIMIT ?",
            (study_id, after, -1 if limit is None else limit),
        ).fetchall()
        trials = [trial_from_row(row) for row in rows]
        if any(t.state in LIVE_TRIAL for t in trials):
            study = db.execute(STUDY_QUERY + " WHERE s.study_id=?", (study_id,)).fetchone()
            if study is not None and study_from_row(study).state == StudyState.INTERRUPTED:
                trials = [
                    t.model_copy(update={"state": TrialState.INTERRUPTED})
                    if t.state in LIVE_TRIAL
                    else t
                    for t in trials
                ]
        return trials

    def next_trial_number(self, study_id: str) -> int:
        """The number the next new trial of the study gets."""
        row = (
            self._db()
            .execute("SELECT max(number) FROM trials WHERE study_id=?", (study_id,))
            .fetchone()
        )
        return int(row[0] or 0) + 1

    # --- events --------------------------------------------------------------------------

    def add_event(
        self,
        study_id: str,
        kind: EventKind,
        trial_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an event; return its sequence number."""
        with self._tx() as db:
            return _insert_event(db, study_id, kind, trial_id, data)

    def events(self, study_id: str, after: int = 0, limit: int = 1000) -> list[EventRecord]:
        """A study's events with ``seq > after``, oldest first."""
        rows = (
            self._db()
            .execute(
                "SELECT * FROM events WHERE study_id=? AND seq>? ORDER BY seq LIMIT ?",
                (study_id, after, limit),
            )
            .fetchall()
        )
        return [
            EventRecord(
                seq=r["seq"],
                study_id=r["study_id"],
                at=r["at"],
                kind=EventKind(r["kind"]),
                trial_id=r["trial_id"],
                data=json.loads(r["data"]),
            )
            for r in rows
        ]


def _write_trial(db: sqlite3.Connection, record: TrialRecord) -> None:
    row = db.execute(
        "SELECT state FROM trials WHERE study_id=? AND trial_id=?",
        (record.study_id, record.trial_id),
    ).fetchone()
    if row is not None and TrialState(row["state"]).is_finished():
        raise FinishedTrialError(
            f"trial {record.trial_id} of study '{record.study_id}' is "
            f"{row['state']} and cannot change; this is a bug, please report it",
            trial_id=record.trial_id,
        )
    db.execute(
        "INSERT OR REPLACE INTO trials (study_id, trial_id, number, params, state, "
        "gpus, score, reason, message, levels, timings, started_at, ended_at, "
        "confirms, node_id, node_ip) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            record.study_id,
            record.trial_id,
            record.number,
            json.dumps(record.params),
            record.state.value,
            record.gpus,
            record.score,
            record.reason,
            record.message,
            # validated again: ``model_copy(update=...)`` does not validate, so a
            # caller's dicts would otherwise reach the file unchecked
            LEVELS.dump_json(LEVELS.validate_python(record.levels)).decode(),
            json.dumps(record.timings),
            record.started_at,
            record.ended_at,
            record.confirms,
            record.node_id,
            record.node_ip,
        ),
    )


def _insert_event(
    db: sqlite3.Connection,
    study_id: str,
    kind: EventKind,
    trial_id: str | None,
    data: Mapping[str, Any] | None,
) -> int:
    cursor = db.execute(
        "INSERT INTO events (study_id, at, kind, trial_id, data) VALUES (?,?,?,?,?)",
        (study_id, time.time(), kind.value, trial_id, json.dumps(dict(data or {}))),
    )
    return int(cursor.lastrowid or 0)
