"""The browser UI: NiceGUI pages mounted on the service's FastAPI app at ``/ui``.

Pages: ``/`` the studies, ``/new`` a new study (form or YAML), ``/study/{id}`` one study,
live, and ``/login`` when the service has a token.
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING

from nicegui import ui as _nicegui_ui

from ui._chart import chart_options, pareto_front
from ui._form import SpecForm, new_study_page, quickstart_text
from ui._pages import login_page, studies_page, study_page
from ui._shell import set_service

if TYPE_CHECKING:
    from fastapi import FastAPI

    from api import Service

__all__ = ["SpecForm", "chart_options", "mount", "pareto_front", "quickstart_text"]

MOUNT_PATH = "/ui"


def mount(app: FastAPI, service: Service) -> None:
    """Mount the pages on ``app`` at ``/ui`` (once per process: NiceGUI is a singleton).

    The session secret comes from ``$AUTOTUNER_STORAGE_SECRET`` (set it to keep logins across
    restarts), else a random one. The session cookie is HttpOnly and SameSite=Strict: no other
    site can make a browser use a login (a link from another site opens the login page).
    """
    set_service(service)
    for path, page in (("/", studies_page), ("/new", new_study_page),
                       ("/study/{study_id}", study_page), ("/login", login_page)):
        _nicegui_ui.page(path)(page)
    secret = os.environ.get("AUTOTUNER_STORAGE_SECRET") or secrets.token_urlsafe(32)
    _nicegui_ui.run_with(app, mount_path=MOUNT_PATH, title="OME Autotuner",
                         storage_secret=secret, show_welcome_message=False,
                         session_middleware_kwargs={"same_site": "strict"},
                         favicon="🎛️", reconnect_timeout=10.0)
