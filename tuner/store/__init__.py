"""The study store: one SQLite file, written by the driver, read by the CLI, API and UI."""

from tuner.store._records import EventRecord, StudyRecord, StudyState, TrialRecord, TrialState
from tuner.store._sqlite import SCHEMA_VERSION, Store, open_store

__all__ = [
    "SCHEMA_VERSION",
    "EventRecord",
    "Store",
    "StudyRecord",
    "StudyState",
    "TrialRecord",
    "TrialState",
    "open_store",
]
