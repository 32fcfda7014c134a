"""Frozen records the store hands out: studies, trials and events."""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["EventRecord", "StudyRecord", "StudyState", "TrialRecord", "TrialState"]


class TrialState(enum.StrEnum):
    """Where a trial is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"  # ended early on purpose: scheduler, user stop, budget
    FAILED = "failed"

    def is_finished(self) -> bool:
        """Whether the trial will change no more."""
        return self in (TrialState.COMPLETED, TrialState.STOPPED, TrialState.FAILED)


class StudyState(enum.StrEnum):
    """Where a study is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"

    def is_finished(self) -> bool:
        """Whether the study will change no more (a stopped one can still be resumed)."""
        return self in (StudyState.COMPLETED, StudyState.STOPPED, StudyState.FAILED)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class TrialRecord(_Record):
    """One trial as stored.

    Attributes:
        number: 1-based order of creation within the study.
        params: the sampled flags (the spec's fixed flags are not repeated).
        levels: one dict of :class:`~tuner.bench.metrics.LevelMetrics` fields per measured level.
        score: the objective's value; None when no level met the SLO or the trial failed.
        reason: failure or stop class (oom, startup, crash, timeout, benchmark, stopped, ...).
        timings: seconds spent deploying (``deploy_s``) and benchmarking (``bench_s``).
        confirms: for a confirmation run (a fresh re-run of a top configuration after the
            search), the id of the trial it repeats; None for the search's own trials.
    """

    study_id: str
    trial_id: str
    number: int
    params: dict[str, Any]
    state: TrialState
    gpus: int
    score: float | None = None
    reason: str | None = None
    message: str | None = None
    levels: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    started_at: float | None = None
    ended_at: float | None = None
    confirms: str | None = None


class StudyRecord(_Record):
    """One study as stored; ``spec`` is the validated spec as a dict."""

    study_id: str
    name: str
    spec: dict[str, Any]
    state: StudyState
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    message: str | None = None
    best_trial_id: str | None = None
    n_trials: int = 0
    n_finished: int = 0


class EventRecord(_Record):
    """Something that happened in a study, in order (``seq`` grows by one per event)."""

    seq: int
    study_id: str
    at: float
    kind: str
    trial_id: str | None = None
    data: dict[str, Any] = {}
