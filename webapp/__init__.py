"""The web app: the REST API (:mod:`api`) and the browser UI (:mod:`ui`) over one service.

``create_app(store_path)`` builds it; ``serve(host, port, store_path)`` runs it with uvicorn.
"""

from webapp._app import RedactQuery, create_app, is_loopback, serve

__all__ = ["RedactQuery", "create_app", "is_loopback", "serve"]
