"""``create_app``: the FastAPI app of the REST API over a ``Service``, with its schema."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from api._errors import install_handlers
from api._plans import router as plans_router
from api._routes import router
from service import Service, StudyManager
from tuner.plan import PlanSpec
from tuner.spec import StudySpec

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_DESCRIPTION = """\
Submit LLM serving studies, follow their trials live and fetch the best configuration.

* A study's spec is the request body of `POST /api/studies` (schema `StudySpec`).
* `GET /api/studies/{id}/events` streams its events as server-sent events.
* With a token set (`AUTOTUNER_TOKEN`), send `Authorization: Bearer <token>`.
* The browser UI is at [/ui](/ui).
"""


def _version() -> str:
    try:
        return metadata.version("ome-autotuner")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def create_app(service: Service, *, home: str = "/docs") -> FastAPI:
    """Build the REST API under ``/api`` over ``service``; its lifespan is the service's.

    With ``service.manager.ray_dashboard`` set, Ray starts with the app (so the dashboard
    link works before the first study). Stopping the app stops every running study and tears
    its servers down; they can be resumed later.

    Args:
        service: from :func:`service.open_service`.
        home: where ``/`` redirects (the UI's path, when one is mounted).

    Returns:
        The app, for ``uvicorn`` or ``fastapi.testclient.TestClient``.
    """
    manager = service.manager

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manager.ray_dashboard:  # the dashboard link should work before the first study
            threading.Thread(target=_warm_up, args=(manager,), daemon=True,
                             name="ray-start").start()
        yield
        await run_in_threadpool(manager.shutdown)

    app = FastAPI(title="OME Autotuner", version=_version(), description=_DESCRIPTION,
                  lifespan=lifespan)
    app.state.service = service
    install_handlers(app)
    app.include_router(router)
    app.include_router(plans_router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(home)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _warm_up(manager: StudyManager) -> None:
    try:
        manager.warm_up()
    except Exception:  # the first study will try again and report the error
        logger.exception("cannot start Ray")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema plus the documents the POST routes read: ``StudySpec`` (of
    ``/studies``) and ``PlanSpec`` (of ``/plans``), with their parts."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (StudySpec, PlanSpec):
        document = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(document.pop("$defs", {}))
        components[model.__name__] = document
    return schema
