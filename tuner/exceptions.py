"""The errors the tuner raises: one root, a few subclasses, messages that say what to do."""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BenchmarkError",
    "DeployTimeoutError",
    "DuplicateStudyError",
    "FinishedTrialError",
    "NotSupportedError",
    "ServerExitedError",
    "SpecError",
    "StoreError",
    "StudyNotFoundError",
    "StudyRunningError",
    "TunerError",
]


class TunerError(Exception):
    """Root of every error the tuner raises on purpose."""


class SpecError(TunerError, ValueError):
    """A study spec (or a value given on the command line) is invalid.

    Attributes:
        errors: one ``(field path, reason)`` pair per problem found.
    """

    def __init__(self, message: str, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class NotSupportedError(TunerError):
    """The chosen backend cannot do what the spec asks."""


class BackendError(TunerError):
    """A deployment could not be created, reached or removed.

    Attributes:
        reason: failure class of the trial (``oom``, ``startup``, ``crashed``, ``timeout``).
        log_path: the server log, when there is one.
    """

    def __init__(
        self, message: str, *, reason: str = "startup", log_path: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.log_path = log_path


class DeployTimeoutError(BackendError):
    """A deployment did not become ready in time."""

    def __init__(self, message: str, *, log_path: str | None = None) -> None:
        super().__init__(message, reason="timeout", log_path=log_path)


class BenchmarkError(TunerError):
    """genai-bench failed or produced no result.

    Attributes:
        returncode: exit code of genai-bench, None when it was killed by the tuner.
        log_path: genai-bench's log file.
    """

    def __init__(
        self, message: str, *, returncode: int | None = None, log_path: str | None = None
    ) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.log_path = log_path


class ServerExitedError(BenchmarkError):
    """The server died while a level was measured: the level says nothing about the config.

    Attributes:
        why: what the backend knows of the death (exit status, log tail).
    """

    def __init__(self, message: str, *, why: str, log_path: str | None = None) -> None:
        super().__init__(message, log_path=log_path)
        self.why = why


class StoreError(TunerError):
    """The study store cannot be read or written."""


class StudyNotFoundError(StoreError):
    """No study has the given id."""


class DuplicateStudyError(StoreError):
    """A study with that id already exists."""


class StudyRunningError(StoreError):
    """Another live process runs the study (a second driver would deploy its trials twice).

    Attributes:
        study_id: the study.
    """

    def __init__(self, message: str, *, study_id: str) -> None:
        super().__init__(message)
        self.study_id = study_id


class FinishedTrialError(StoreError):
    """Something tried to change a finished trial; finished trials are never written again.

    Attributes:
        trial_id: the trial.
    """

    def __init__(self, message: str, *, trial_id: str) -> None:
        super().__init__(message)
        self.trial_id = trial_id
