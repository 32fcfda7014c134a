"""The service: a FastAPI app with the REST API under ``/api`` and the NiceGUI UI under ``/ui``.

``create_app(store_path)`` builds it; ``serve(host, port, store_path)`` runs it with uvicorn.
"""

from api._app import create_app, serve
from api._errors import AuthError, NoBestTrialError, StudyBusyError
from api._events import EventHub
from api._manager import Driver, StudyManager
from api._routes import Service
from api._views import (
    BestConfig,
    StudyView,
    planned_trials,
    study_spec,
    study_view,
    trials_csv,
)

__all__ = [
    "AuthError",
    "BestConfig",
    "Driver",
    "EventHub",
    "NoBestTrialError",
    "Service",
    "StudyBusyError",
    "StudyManager",
    "StudyView",
    "create_app",
    "planned_trials",
    "serve",
    "study_spec",
    "study_view",
    "trials_csv",
]
