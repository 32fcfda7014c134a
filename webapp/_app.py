"""``create_app`` and ``serve``: the one web app, the API and the UI over one service."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

import api
from service import Driver, InsecureServiceError, open_service

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["RedactQuery", "create_app", "is_loopback", "serve"]

logger = logging.getLogger(__name__)


def create_app(store_path: Path, *, gpus: int = 8, ray_dashboard: bool = False,
               token: str | None = None, max_running: int = 2, driver: Driver | None = None,
               resume_interrupted: bool = False) -> FastAPI:
    """Open the service, build the REST API over it under ``/api``, mount the UI at ``/ui``.

    NiceGUI is one per process: build one such app per process. The arguments are those of
    :func:`service.open_service`.

    Returns:
        The app, for ``uvicorn``.

    Raises:
        StoreError: the store cannot be opened.
    """
    import ui  # NiceGUI reads NICEGUI_STORAGE_PATH on import, which serve sets first

    service = open_service(Path(store_path), gpus=gpus, ray_dashboard=ray_dashboard,
                           token=token, max_running=max_running, driver=driver,
                           resume_interrupted=resume_interrupted)
    app = api.create_app(service, home=f"{ui.MOUNT_PATH}/")
    ui.mount(app, service)
    return app


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
