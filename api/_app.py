"""``create_app`` and ``serve``: the FastAPI app owning ``/api``, the UI mounted at ``/ui``."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from api._errors import InsecureServiceError, install_handlers
from api._events import EventHub
from api._manager import Driver, StudyManager
from api._routes import Service, router
from tuner.spec import StudySpec

__all__ = ["create_app", "is_loopback", "serve"]

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


def create_app(store_path: Path, *, gpus: int = 8, ray_dashboard: bool = False,
               token: str | None = None, max_running: int = 2, with_ui: bool = True,
               driver: Driver | None = None, resume_interrupted: bool = False) -> FastAPI:
    """Build the service: the REST API under ``/api`` and the NiceGUI app under ``/ui``.

    Studies submitted to it run in background threads of this process (``max_running`` at a
    time, the rest queued), sharing one Ray instance whose pool has ``gpus`` units. Ray starts
    with the first study (at start-up when ``ray_dashboard`` is set). Stopping the app stops
    every running study and tears its servers down; they can be resumed later.

    Args:
        store_path: the SQLite store (created if missing).
        gpus: GPU units of the Ray pool.
        ray_dashboard: start Ray's dashboard and link to it from the UI (needs the
            ``ray[default]`` extra; without it the UI says so).
        token: bearer token every ``/api`` call and the UI require; default:
            ``$AUTOTUNER_TOKEN``; empty or unset means no auth.
        max_running: studies that run at once.
        with_ui: mount the NiceGUI app (NiceGUI is one per process: build one such app).
        driver: the tuner functions the manager calls; tests pass a fake.
        resume_interrupted: resume the studies found interrupted (their driver gone) at
            start-up and later; by default they wait for a user's Resume.

    Returns:
        The app, for ``uvicorn`` or ``fastapi.testclient.TestClient``.

    Raises:
        StoreError: the store cannot be opened.
    """
    if token is None:
        token = os.environ.get("AUTOTUNER_TOKEN") or None
    manager = StudyManager(Path(store_path), gpus=gpus, ray_dashboard=ray_dashboard,
                           max_running=max_running, driver=driver,
                           resume_interrupted=resume_interrupted)
    service = Service(manager=manager, hub=EventHub(manager.store), token=token or None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if ray_dashboard:  # the dashboard link should work before the first study
            threading.Thread(target=_warm_up, args=(manager,), daemon=True,
                             name="ray-start").start()
        yield
        await run_in_threadpool(manager.shutdown)

    app = FastAPI(title="OME Autotuner", version=_version(), description=_DESCRIPTION,
                  lifespan=lifespan)
    app.state.service = service
    install_handlers(app)
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/" if with_ui else "/docs")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if with_ui:
        import ui  # NiceGUI: imported only when mounted

        ui.mount(app, service)
    return app


def _warm_up(manager: StudyManager) -> None:
    try:
        manager.warm_up()
    except Exception:  # the first study will try again and report the error
        logger.exception("cannot start Ray")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema plus ``StudySpec`` and its parts, the body of ``POST /studies``."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    spec = StudySpec.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(spec.pop("$defs", {}))
    components["StudySpec"] = spec
    return schema


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # another host name: it may resolve to anything
        return False


def serve(host: str, port: int, store_path: Path, gpus: int = 8, ray_dashboard: bool = False,
          *, token: str | None = None, max_running: int = 2, log_level: str = "info",
          insecure: bool = False, resume_interrupted: bool = False) -> None:
    """Run the service in this process until Ctrl-C (which stops running studies cleanly).

    Args:
        host: address to bind; keep ``127.0.0.1`` unless a proxy with TLS is in front.
        port: TCP port.
        store_path: the SQLite store.
        gpus: GPU units of the Ray pool.
        ray_dashboard: start Ray's dashboard (``ray[default]`` extra).
        token: bearer token; default ``$AUTOTUNER_TOKEN``.
        max_running: studies that run at once.
        log_level: uvicorn's log level.
        insecure: listen beyond this host without a token (warns loudly); for a service
            behind a proxy that authenticates.
        resume_interrupted: see :func:`create_app`.

    Raises:
        InsecureServiceError: ``host`` is not a loopback address, no token is set, and
            ``insecure`` is not.
        StoreError: the store cannot be opened.
    """
    import uvicorn

    if token is None:
        token = os.environ.get("AUTOTUNER_TOKEN") or None
    if not token and not is_loopback(host):
        if not insecure:
            raise InsecureServiceError(
                f"refusing to serve on {host} without a token: anyone who reaches port {port} "
                "could run studies on your GPUs and read every result. Set AUTOTUNER_TOKEN "
                "(e.g. to the output of `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`), keep --host 127.0.0.1, or pass "
                "--insecure if a proxy in front authenticates every request")
        print(f"WARNING: serving on {host}:{port} with NO token (--insecure): anyone who can "
              "reach this port can run studies on your GPUs and read every result",
              file=sys.stderr, flush=True)
        logger.warning("serving on %s:%s with no token (--insecure)", host, port)
    logging.getLogger("uvicorn.access").addFilter(RedactQuery())

    # NiceGUI keeps UI sessions in ./.nicegui unless told otherwise: keep them by the store.
    # (Read when NiceGUI is imported, which create_app does.)
    os.environ.setdefault("NICEGUI_STORAGE_PATH", str(Path(store_path).parent / ".nicegui"))
    app = create_app(Path(store_path), gpus=gpus, ray_dashboard=ray_dashboard, token=token,
                     max_running=max_running, resume_interrupted=resume_interrupted)
    auth = "on" if app.state.service.token else "off"
    print(f"autotuner service on http://{host}:{port}/ui (API docs /docs, auth {auth}, "
          f"store {store_path})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1,
                timeout_graceful_shutdown=120)


class RedactQuery(logging.Filter):
    """Blank out secrets in the URLs of access-log lines: the service never reads a token
    from a URL, but a client may still put one there, and logs are kept and shared."""

    _WORDS = ("token", "secret", "key", "password")

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's path argument (uvicorn passes it as the third)."""
        if isinstance(record.args, tuple) and len(record.args) >= 3 \
                and isinstance(record.args[2], str) and "?" in record.args[2]:
            path, _, query = record.args[2].partition("?")
            parts = [self._redact(part) for part in query.split("&")]
            record.args = (*record.args[:2], f"{path}?{'&'.join(parts)}", *record.args[3:])
        return True

    def _redact(self, part: str) -> str:
        key, sep, _ = part.partition("=")
        secret = any(word in unquote_plus(key).lower() for word in self._WORDS)
        return f"{key}{sep}***" if secret else part
