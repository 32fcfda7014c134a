"""The service's errors that are not about HTTP: a busy study, no best trial, an open port."""

from __future__ import annotations

from tuner.exceptions import StoreError, TunerError

__all__ = ["InsecureServiceError", "NoBestTrialError", "StudyBusyError"]


class InsecureServiceError(TunerError):
    """The service would listen beyond this host with no token."""


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
