"""The store's tables, how an older file is brought up to date, and how rows become records."""

from __future__ import annotations

import json
import sqlite3

from pydantic import TypeAdapter

from tuner.bench.metrics import LevelMetrics
from tuner.store._driver import driver_alive
from tuner.store._records import StudyRecord, StudyState, TrialReason, TrialRecord, TrialState

__all__ = ["LEVELS", "LIVE_TRIAL", "SCHEMA", "SCHEMA_VERSION", "STUDY_QUERY", "study_from_row",
           "trial_from_row", "upgrade"]

SCHEMA_VERSION = 3
# Levels are stored as JSON objects of LevelMetrics fields; fields added later have defaults,
# so rows written before them still read.
LEVELS = TypeAdapter(list[LevelMetrics])

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    study_id TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL, state TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, ended_at REAL, message TEXT, best_trial_id TEXT,
    driver TEXT, heartbeat_at REAL);
CREATE TABLE IF NOT EXISTS trials (
    study_id TEXT NOT NULL REFERENCES studies(study_id) ON DELETE CASCADE,
    trial_id TEXT NOT NULL, number INTEGER NOT NULL, params TEXT NOT NULL, state TEXT NOT NULL,
    gpus INTEGER NOT NULL, score REAL, reason TEXT, message TEXT, levels TEXT NOT NULL,
    timings TEXT NOT NULL, started_at REAL, ended_at REAL, confirms TEXT, node_id TEXT,
    node_ip TEXT, PRIMARY KEY (study_id, trial_id));
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id TEXT NOT NULL REFERENCES studies(study_id) ON DELETE CASCADE,
    at REAL NOT NULL, kind TEXT NOT NULL, trial_id TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_study ON events (study_id, seq);
"""


STUDY_QUERY = (
    "SELECT s.*, (SELECT count(*) FROM trials t WHERE t.study_id=s.study_id) AS n_trials, "
    "(SELECT count(*) FROM trials t WHERE t.study_id=s.study_id "
    "AND t.state IN ('completed','stopped','failed')) AS n_finished FROM studies s"
)


LIVE_TRIAL = (TrialState.PENDING, TrialState.RUNNING)


def study_from_row(row: sqlite3.Row) -> StudyRecord:
    state = StudyState(row["state"])
    if state == StudyState.RUNNING and not driver_alive(row["driver"], row["heartbeat_at"]):
        state = StudyState.INTERRUPTED
    return StudyRecord(
        study_id=row["study_id"],
        name=row["name"],
        spec=json.loads(row["spec"]),
        state=state,
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        message=row["message"],
        best_trial_id=row["best_trial_id"],
        driver=row["driver"],
        heartbeat_at=row["heartbeat_at"],
        n_trials=row["n_trials"],
        n_finished=row["n_finished"],
    )


def trial_from_row(row: sqlite3.Row) -> TrialRecord:
    return TrialRecord(
        study_id=row["study_id"],
        trial_id=row["trial_id"],
        number=row["number"],
        params=json.loads(row["params"]),
        state=TrialState(row["state"]),
        gpus=row["gpus"],
        score=row["score"],
        reason=_reason(row["reason"]),
        message=row["message"],
        levels=LEVELS.validate_json(row["levels"]),
        timings=json.loads(row["timings"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        confirms=row["confirms"],
        node_id=row["node_id"],
        node_ip=row["node_ip"],
    )


def _reason(text: str | None) -> TrialReason | None:
    if text is None:
        return None
    return TrialReason(_OLD_REASONS.get(text, text))


# Reasons stores of schema 2 wrote under another name.
_OLD_REASONS = {"crash": TrialReason.CRASHED.value}


def upgrade(db: sqlite3.Connection, version: int) -> None:
    """Bring an older store up to ``SCHEMA_VERSION``, in place; changes are only additive."""
    if version < 2:  # 2: trials.confirms marks confirmation runs
        db.execute("ALTER TABLE trials ADD COLUMN confirms TEXT")
    if version < 3:  # 3: the driver's lease on a running study; the node a trial ran on
        db.execute("ALTER TABLE studies ADD COLUMN driver TEXT")
        db.execute("ALTER TABLE studies ADD COLUMN heartbeat_at REAL")
        db.execute("ALTER TABLE trials ADD COLUMN node_id TEXT")
        db.execute("ALTER TABLE trials ADD COLUMN node_ip TEXT")
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (SCHEMA_VERSION,))
