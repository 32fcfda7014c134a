"""The browser UI: NiceGUI pages over a :class:`service.Service`, mounted on a FastAPI app.

Pages: ``/`` the studies, ``/new`` a new study (form or YAML), ``/study/{id}`` one study,
live, ``/plan`` capacity plans, and ``/login`` when the service has a token.
"""

from __future__ import annotations

import functools
import inspect
import os
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nicegui import ui as _nicegui_ui

from ui._chart import chart_options
from ui._form import new_study_page
from ui._login import login_page
from ui._pages import studies_page, study_page
from ui._plan import plan_page
from ui._spec_form import SpecForm, quickstart_text

if TYPE_CHECKING:
    from fastapi import FastAPI

    from service import Service

__all__ = ["MOUNT_PATH", "SpecForm", "chart_options", "mount", "quickstart_text"]

MOUNT_PATH = "/ui"


def mount(app: FastAPI, service: Service) -> None:
    """Mount the pages, each bound to ``service``, on ``app`` at ``/ui`` (once per process:
    NiceGUI is a singleton).

    The session secret comes from ``$AUTOTUNER_STORAGE_SECRET`` (set it to keep logins across
    restarts), else a random one. The session cookie is HttpOnly and SameSite=Strict: no other
    site can make a browser use a login (a link from another site opens the login page).
    """
    for path, page in (("/", studies_page), ("/new", new_study_page),
                       ("/study/{study_id}", study_page), ("/plan", plan_page),
                       ("/login", login_page)):
        _nicegui_ui.page(path)(_bind(page, service))
    secret = os.environ.get("AUTOTUNER_STORAGE_SECRET") or secrets.token_urlsafe(32)
    _nicegui_ui.run_with(app, mount_path=MOUNT_PATH, title="OME Autotuner",
                         storage_secret=secret, show_welcome_message=False,
                         session_middleware_kwargs={"same_site": "strict"},
                         favicon="🎛️", reconnect_timeout=10.0)


def _bind(page: Callable[..., Any], service: Service) -> Callable[..., Any]:
    """``page`` with ``service`` as its first argument; the rest of its signature (and its
    module, where FastAPI resolves the annotations) stays visible to NiceGUI and FastAPI."""

    @functools.wraps(page)
    def bound(*args: Any, **kwargs: Any) -> Any:
        return page(service, *args, **kwargs)

    signature = inspect.signature(page)
    bound.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:])
    return bound
