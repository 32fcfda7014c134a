"""The study store: one SQLite file, written by the driver, read by the CLI, API and UI."""

from tuner.store._driver import HEARTBEAT_S, LEASE_S, driver_alive, this_driver
from tuner.store._records import (
    EventRecord,
    StudyRecord,
    StudyState,
    TrialReason,
    TrialRecord,
    TrialState,
)
from tuner.store._sqlite import SCHEMA_VERSION, Store, open_store

__all__ = [
    "HEARTBEAT_S",
    "LEASE_S",
    "SCHEMA_VERSION",
    "EventRecord",
    "Store",
    "StudyRecord",
    "StudyState",
    "TrialReason",
    "TrialRecord",
    "TrialState",
    "driver_alive",
    "open_store",
    "this_driver",
]
