"""What every page shares: the login check, the header and the status chips."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app, ui

if TYPE_CHECKING:
    from service import Service

__all__ = ["STATE_COLORS", "chip_slot", "guard", "header", "state_chip", "when"]

STATE_COLORS = {"queued": "grey-7", "pending": "grey-7", "starting": "amber-8",
                "running": "orange-8", "interrupted": "deep-orange-9",
                "completed": "green-7", "stopped": "blue-grey-6", "failed": "red-7"}



def guard(svc: Service, request: Request) -> RedirectResponse | None:
    """None when the visitor may see the page; else a redirect to the login page.

    The login page keeps the token in ``app.storage.user``, on the server, under the
    session's HttpOnly, SameSite=Strict cookie. A token in the URL is never taken: URLs end
    up in browser history, proxies and access logs.
    """
    if not svc.token:
        return None
    if svc.check_token(app.storage.user.get("token")):
        return None
    root = request.scope.get("root_path", "")
    target = quote(request.url.path.removeprefix(root) or "/")
    return RedirectResponse(f"{root}/login?next={target}")


def header(title: str) -> None:
    """The page header with the navigation."""
    ui.page_title(f"{title} · OME Autotuner")
    with ui.header().classes("items-center justify-between bg-slate-800 px-6 py-2"):
        with ui.row().classes("items-center gap-6"):
            ui.label("OME Autotuner").classes("text-lg font-bold text-white")
            ui.link("Studies", "/").classes("text-white no-underline")
            ui.link("New study", "/new").classes("text-white no-underline")
            ui.link("Plan capacity", "/plan").classes("text-white no-underline")
        # a plain anchor: ui.link would put the /ui prefix in front of /docs
        ui.html('<a href="/docs" target="_blank" style="color:white">API docs</a>',
                sanitize=False)


def state_chip(state: str) -> ui.chip:
    """A coloured chip for a study or trial state."""
    return ui.chip(state, color=STATE_COLORS.get(state, "grey-7"), text_color="white") \
        .props("dense square").mark("state")


def chip_slot(table: ui.table, column: str = "state") -> None:
    """Render ``column`` of ``table`` as a state chip."""
    colors = ", ".join(f"{k}: '{v}'" for k, v in STATE_COLORS.items())
    table.add_slot(f"body-cell-{column}", f"""
        <q-td :props="props">
          <q-chip dense square text-color="white" :label="props.value"
                  :color="({{{colors}}})[props.value] || 'grey-7'" />
        </q-td>""")


def when(timestamp: float | None) -> str:
    """A timestamp as local ``YYYY-MM-DD HH:MM:SS``, or an empty string."""
    if timestamp is None:
        return ""
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
