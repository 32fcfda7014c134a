"""The login page: the service's token, kept in the session (never in a URL)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app, ui

if TYPE_CHECKING:
    from service import Service

__all__ = ["login_page"]


def login_page(svc: Service, request: Request,
               next: str = "/") -> RedirectResponse | None:  # noqa: A002
    """Ask for the service's token and keep it in the session."""
    safe = next.startswith("/") and not next.startswith("//") and "\\" not in next
    target = next if safe else "/"  # only a path of this app: never another site
    if not svc.token:
        return RedirectResponse(request.scope.get("root_path", "") + target)
    ui.page_title("Log in · OME Autotuner")

    def submit() -> None:
        if svc.check_token(token.value):
            app.storage.user["token"] = token.value
            ui.navigate.to(target)
        else:
            token.error = "wrong token"

    with ui.card().classes("absolute-center w-96"):
        ui.label("OME Autotuner").classes("text-xl font-bold")
        ui.label("This service needs the token it was started with (AUTOTUNER_TOKEN).") \
            .classes("text-sm text-gray-600")
        token = ui.input("Token", password=True, password_toggle_button=True) \
            .classes("w-full").on("keydown.enter", submit).mark("token")
        ui.button("Log in", on_click=submit).mark("login")
    return None
