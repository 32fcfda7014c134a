"""The HTTP-only errors, and the one handler that turns every error into a JSON body."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import NoBestTrialError, StudyBusyError
from tuner.exceptions import (
    DuplicateStudyError,
    NotSupportedError,
    SpecError,
    StudyNotFoundError,
    TunerError,
)

__all__ = ["AuthError", "BodyTooLargeError", "UnsupportedMediaTypeError", "error_body",
           "install_handlers", "status_of"]

logger = logging.getLogger(__name__)


class AuthError(TunerError):
    """The request carries no valid bearer token."""


class UnsupportedMediaTypeError(TunerError):
    """The request body comes with a content type the route does not read."""


class BodyTooLargeError(TunerError):
    """The request body is larger than any study spec can be."""


def status_of(error: TunerError) -> int:
    """The HTTP status code of a tuner error."""
    if isinstance(error, SpecError | NotSupportedError):
        return 422
    if isinstance(error, StudyNotFoundError | NoBestTrialError):
        return 404
    if isinstance(error, DuplicateStudyError | StudyBusyError):
        return 409
    if isinstance(error, AuthError):
        return 401
    if isinstance(error, BodyTooLargeError):
        return 413
    if isinstance(error, UnsupportedMediaTypeError):
        return 415
    return 500


def error_body(error: Exception) -> dict[str, Any]:
    """``{"error": <class name>, "message": str(e), ...fields}``."""
    body: dict[str, Any] = {"error": type(error).__name__, "message": str(error)}
    for key, value in vars(error).items():
        if key.startswith("_") or key in body:
            continue
        if isinstance(error, SpecError) and key == "errors":
            value = [{"path": path, "reason": reason} for path, reason in value]
        body[key] = value
    return body


def install_handlers(app: FastAPI) -> None:
    """Map the TunerError hierarchy (and request and unexpected errors) to JSON responses."""

    async def tuner_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TunerError)
        status = status_of(exc)
        if status == 500:
            logger.error("%s %s failed: %s", request.method, request.url.path, exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(error_body(exc), status_code=status, headers=headers)

    async def request_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{"path": ".".join(str(p) for p in err.get("loc", ())),
                   "reason": str(err.get("msg", ""))} for err in exc.errors()]
        lines = "; ".join(f"{e['path']}: {e['reason']}" for e in errors)
        return JSONResponse({"error": "RequestValidationError",
                             "message": f"the request is invalid: {lines}", "errors": errors},
                            status_code=422)

    app.add_exception_handler(TunerError, tuner_error)
    app.add_exception_handler(RequestValidationError, request_error)
    app.add_middleware(_CatchAll)


class _CatchAll:
    """Answer an unexpected error with a JSON 500 and keep the connection.

    Starlette's own last-resort handler re-raises after answering, and uvicorn then closes
    the connection, so one bad request would cost every client on it its keep-alive.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            logger.exception("%s %s crashed", scope.get("method"), scope.get("path"))
            if started:  # part of the answer is out: only closing can tell the client
                raise
            body = json.dumps({"error": type(exc).__name__,
                               "message": f"internal error: {exc}; see the service log"})
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body.encode()})
