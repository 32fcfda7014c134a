"""``Store``: the SQLite file that is the one source of truth for studies, trials and events."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tuner.exceptions import DuplicateStudyError, StoreError, StudyNotFoundError
from tuner.store._records import EventRecord, StudyRecord, StudyState, TrialRecord, TrialState

__all__ = ["SCHEMA_VERSION", "Store", "open_store"]

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    study_id TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL, state TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, ended_at REAL, message TEXT, best_trial_id TEXT);
CREATE TABLE IF NOT EXISTS trials (
    study_id TEXT NOT NULL REFERENCES studies(study_id) ON DELETE CASCADE,
    trial_id TEXT NOT NULL, number INTEGER NOT NULL, params TEXT NOT NULL, state TEXT NOT NULL,
    gpus INTEGER NOT NULL, score REAL, reason TEXT, message TEXT, levels TEXT NOT NULL,
    timings TEXT NOT NULL, started_at REAL, ended_at REAL, confirms TEXT,
    PRIMARY KEY (study_id, trial_id));
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id TEXT NOT NULL REFERENCES studies(study_id) ON DELETE CASCADE,
    at REAL NOT NULL, kind TEXT NOT NULL, trial_id TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_study ON events (study_id, seq);
"""


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
            self._db().executescript(_SCHEMA)
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
                _upgrade(db, int(row[0]))

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
        """Move a study to ``state``, stamping start and end times."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE studies SET state=?, message=?, "
                "started_at=CASE WHEN ?='running' THEN coalesce(started_at, ?) "
                "ELSE started_at END,"
                " ended_at=CASE WHEN ? IN ('completed','stopped','failed') THEN ? ELSE NULL END "
                "WHERE study_id=?",
                (state.value, message, state.value, now, state.value, now, study_id),
            )

    def get_study(self, study_id: str) -> StudyRecord:
        """The study with that id.

        Raises:
            StudyNotFoundError: there is none.
        """
        row = self._db().execute(_STUDY_QUERY + " WHERE s.study_id=?", (study_id,)).fetchone()
        if row is None:
            raise StudyNotFoundError(
                f"no study '{study_id}' in {self.path}; `autotuner list` shows the studies"
            )
        return _study(row)

    def list_studies(self) -> list[StudyRecord]:
        """Every study, newest first."""
        rows = self._db().execute(_STUDY_QUERY + " ORDER BY s.created_at DESC").fetchall()
        return [_study(row) for row in rows]

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
        """Insert or replace a trial and refresh the study's best trial."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO trials (study_id, trial_id, number, params, state, "
                "gpus, score, reason, message, levels, timings, started_at, ended_at, "
                "confirms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                    json.dumps(record.levels),
                    json.dumps(record.timings),
                    record.started_at,
                    record.ended_at,
                    record.confirms,
                ),
            )

    def set_best(self, study_id: str, trial_id: str | None) -> None:
        """Record which trial is the best so far."""
        with self._tx() as db:
            db.execute("UPDATE studies SET best_trial_id=? WHERE study_id=?", (trial_id, study_id))

    def delete_trial(self, study_id: str, trial_id: str) -> None:
        """Remove one trial (one that never started: it holds no measurement)."""
        with self._tx() as db:
            db.execute("DELETE FROM trials WHERE study_id=? AND trial_id=?", (study_id, trial_id))

    def get_trial(self, study_id: str, trial_id: str) -> TrialRecord | None:
        """One trial, or None."""
        row = (
            self._db()
            .execute("SELECT * FROM trials WHERE study_id=? AND trial_id=?", (study_id, trial_id))
            .fetchone()
        )
        return _trial(row) if row else None

    def list_trials(self, study_id: str) -> list[TrialRecord]:
        """A study's trials in creation order."""
        rows = (
            self._db()
            .execute("SELECT * FROM trials WHERE study_id=? ORDER BY number", (study_id,))
            .fetchall()
        )
        return [_trial(row) for row in rows]

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
        kind: str,
        trial_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> int:
        """Append an event; return its sequence number."""
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO events (study_id, at, kind, trial_id, data) VALUES (?,?,?,?,?)",
                (study_id, time.time(), kind, trial_id, json.dumps(data or {})),
            )
        return int(cursor.lastrowid or 0)

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
                kind=r["kind"],
                trial_id=r["trial_id"],
                data=json.loads(r["data"]),
            )
            for r in rows
        ]


_STUDY_QUERY = (
    "SELECT s.*, (SELECT count(*) FROM trials t WHERE t.study_id=s.study_id) AS n_trials, "
    "(SELECT count(*) FROM trials t WHERE t.study_id=s.study_id "
    "AND t.state IN ('completed','stopped','failed')) AS n_finished FROM studies s"
)


def _study(row: sqlite3.Row) -> StudyRecord:
    return StudyRecord(
        study_id=row["study_id"],
        name=row["name"],
        spec=json.loads(row["spec"]),
        state=StudyState(row["state"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        message=row["message"],
        best_trial_id=row["best_trial_id"],
        n_trials=row["n_trials"],
        n_finished=row["n_finished"],
    )


def _trial(row: sqlite3.Row) -> TrialRecord:
    return TrialRecord(
        study_id=row["study_id"],
        trial_id=row["trial_id"],
        number=row["number"],
        params=json.loads(row["params"]),
        state=TrialState(row["state"]),
        gpus=row["gpus"],
        score=row["score"],
        reason=row["reason"],
        message=row["message"],
        levels=json.loads(row["levels"]),
        timings=json.loads(row["timings"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        confirms=row["confirms"],
    )


def _upgrade(db: sqlite3.Connection, version: int) -> None:
    """Bring an older store up to ``SCHEMA_VERSION``, in place; changes are only additive."""
    if version < 2:  # 2: trials.confirms marks confirmation runs
        db.execute("ALTER TABLE trials ADD COLUMN confirms TEXT")
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (SCHEMA_VERSION,))
