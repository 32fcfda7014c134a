"""The REST API: a FastAPI app serving a :class:`service.Service` under ``/api``.

``create_app(service)`` builds it; :mod:`webapp` adds the UI and runs it.
"""

from api._app import create_app
from api._errors import AuthError

__all__ = ["AuthError", "create_app"]
