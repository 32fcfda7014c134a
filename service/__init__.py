"""The service behind the API and the UI, with no web code: studies queued and run in this
process, their events fanned out, and what the front ends show of them.

``open_service(store_path)`` opens it; :mod:`api` and :mod:`ui` serve the ``Service`` it returns.
"""

from service._errors import InsecureServiceError, NoBestTrialError, StudyBusyError
from service._events import EventHub
from service._manager import Driver, StudyManager
from service._service import Service, open_service
from service._views import (
    BestConfig,
    StudyView,
    planned_trials,
    study_spec,
    study_view,
    trials_csv,
)

__all__ = [
    "BestConfig",
    "Driver",
    "EventHub",
    "InsecureServiceError",
    "NoBestTrialError",
    "Service",
    "StudyBusyError",
    "StudyManager",
    "StudyView",
    "open_service",
    "planned_trials",
    "study_spec",
    "study_view",
    "trials_csv",
]
