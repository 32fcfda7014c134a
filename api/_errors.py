"""The service's own errors, and the one handler that turns every error into a JSON body."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tuner.exceptions import (
    DuplicateStudyError,
    NotSupportedError,
    SpecError,
    StoreError,
    StudyNotFoundError,
    TunerError,
)

__all__ = ["AuthError", "NoBestTrialError", "StudyBusyError", "error_body", "install_handlers",
           "status_of"]

logger = logging.getLogger(__name__)


class AuthError(TunerError):
    """The request carries no valid bearer token."""


class StudyBusyError(StoreError):
    """The study is running or waiting to run, so it cannot be changed that way now.

    Attributes:
        study_id: the study.
        state: its state when the request came.
    """

    def __init__(self, message: str, *, study_id: str, state: str) -> None:
        super().__init__(message)
        self.study_id = study_id
        self.state = state


class NoBestTrialError(TunerError):
    """The study has no trial that met the SLO yet.

    Attributes:
        study_id: the study.
    """

    def __init__(self, message: str, *, study_id: str) -> None:
        super().__init__(message)
        self.study_id = study_id


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

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("%s %s crashed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": type(exc).__name__,
                             "message": f"internal error: {exc}; see the service log"},
                            status_code=500)

    app.add_exception_handler(TunerError, tuner_error)
    app.add_exception_handler(RequestValidationError, request_error)
    app.add_exception_handler(Exception, unexpected)
