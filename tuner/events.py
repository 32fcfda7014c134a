"""What happens in a study, as the store records it: the event kinds and their payloads.

The store keeps events in order; the CLI's live view, the API's server-sent events and the UI
follow them. Payloads are JSON objects whose keys each kind's ``TypedDict`` below names.
"""

from __future__ import annotations

import enum
from typing import Any, TypedDict

__all__ = [
    "EventKind",
    "LevelMeasured",
    "StudyFinished",
    "StudyInterrupted",
    "StudyStarted",
    "TrialAnnounced",
    "TrialFailed",
    "TrialFinished",
    "TrialWarmedUp",
]


class EventKind(enum.StrEnum):
    """The kinds of events, in the order a study usually shows them."""

    STUDY_STARTED = "study_started"  # StudyStarted
    PRESCREEN = "prescreen"  # the pre-screen's summary (tuner.search.Prescreen.summary)
    PRESCREEN_SKIPPED = "prescreen_skipped"  # {"reason"}
    TRIAL_PENDING = "trial_pending"  # TrialAnnounced: waiting for GPUs
    TRIAL_STARTED = "trial_started"  # TrialAnnounced: its actor runs (deploy included)
    TRIAL_WARMED_UP = "trial_warmed_up"  # TrialWarmedUp: its server's unmeasured first wave
    LEVEL_MEASURED = "level_measured"  # LevelMeasured
    TRIAL_FAILED = "trial_failed"  # TrialFailed
    TRIAL_RETRIED = "trial_retried"  # TrialFailed: it runs again from scratch (node lost)
    TRIAL_FINISHED = "trial_finished"  # TrialFinished: completed or stopped
    CONFIRMATION_STARTED = "confirmation_started"  # {"trials", "repeats"}
    CONFIRMATION = "confirmation"  # the verdict (tuner.search.Verdict.to_dict)
    STUDY_INTERRUPTED = "study_interrupted"  # StudyInterrupted: its driver is gone
    STUDY_FINISHED = "study_finished"  # StudyFinished: always the last event of a run


class StudyStarted(TypedDict):
    resumed: bool
    swept: dict[str, list[str]]  # node id -> deployments an earlier driver left, removed
    reruns: list[str]  # trials the dead driver left unfinished, run once more
    cautions: list[str]  # StudySpec.cautions(): valid, but probably not what was meant


class StudyInterrupted(TypedDict):
    message: str
    swept: dict[str, list[str]]  # node id -> deployments removed


class StudyFinished(TypedDict):
    state: str
    best_trial_id: str | None
    best_score: float | None
    message: str | None
    importance: dict[str, float]
    pareto: list[dict[str, Any]]


class TrialAnnounced(TypedDict):
    number: int
    params: dict[str, Any]
    gpus: int
    confirms: str | None
    reruns: str | None  # the interrupted trial whose config this one runs again


class TrialWarmedUp(TypedDict):
    requests: int
    failed: int  # no answer or an error status
    seconds: float
    error: str | None  # the first failure


class LevelMeasured(TypedDict):
    level: dict[str, Any]
    meets_slo: bool
    violations: str
    score: float | None


class TrialFailed(TypedDict):
    reason: str
    message: str | None


class TrialFinished(TypedDict):
    state: str
    score: float | None
    reason: str | None
    message: str | None
    confirms: str | None
