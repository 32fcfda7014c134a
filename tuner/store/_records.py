"""Frozen records the store hands out: studies, trials and events."""

from __future__ import annotations

import enum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from tuner.bench.metrics import LevelMetrics
from tuner.events import EventKind

__all__ = [
    "EventRecord",
    "StudyRecord",
    "StudyState",
    "TrialReason",
    "TrialRecord",
    "TrialState",
]


class TrialState(enum.StrEnum):
    """Where a trial is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # its driver died; a resume runs its config once more
    COMPLETED = "completed"
    STOPPED = "stopped"  # ended early on purpose: scheduler, user stop, budget
    FAILED = "failed"

    def is_finished(self) -> bool:
        """Whether the trial will change no more: finished trials are never written again."""
        return self in (TrialState.COMPLETED, TrialState.STOPPED, TrialState.FAILED)


class TrialReason(enum.StrEnum):
    """Why a trial ended the way it did (None on a trial that met the SLO to the end)."""

    OOM = "oom"  # the server ran out of GPU memory while starting
    STARTUP = "startup"  # the server refused its flags or died while starting
    TIMEOUT = "timeout"  # not healthy within backend.startup_timeout_s, or past the trial limit
    CRASHED = "crashed"  # the server died after it was ready (mid-benchmark included)
    BENCHMARK = "benchmark"  # genai-bench itself failed
    ERROR = "error"  # the trial's own code raised (a bug), or Ray lost its actor
    NODE_LOST = "node_lost"  # the node it ran on left the cluster
    UNSCHEDULABLE = "unschedulable"  # no node could give it its GPUs in time
    SLO_VIOLATED = "slo_violated"  # measured to the end, no level met the SLO
    EARLY_STOPPED = "early_stopped"  # the scheduler stopped it: it could not win
    STOPPED = "stopped"  # the user stopped the study, or its time budget ran out


class StudyState(enum.StrEnum):
    """Where a study is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # its driver is gone (killed, host lost): resume it
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"

    def is_finished(self) -> bool:
        """Whether the study will change no more (a stopped one can still be resumed)."""
        return self in (StudyState.COMPLETED, StudyState.STOPPED, StudyState.FAILED)

    def can_resume(self) -> bool:
        """Whether ``resume`` may continue it: it ended before its search did."""
        return self in (StudyState.STOPPED, StudyState.FAILED, StudyState.INTERRUPTED)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class TrialRecord(_Record):
    """One trial as stored.

    Attributes:
        number: 1-based order of creation within the study.
        params: the sampled flags (the spec's fixed flags are not repeated).
        levels: what each measured level gave, in the order measured.
        score: the objective's value; None when no level met the SLO or the trial failed.
        reason: failure or stop class (oom, startup, crash, timeout, benchmark, stopped, ...).
        timings: seconds spent deploying (``deploy_s``), warming the server up (``warmup_s``,
            absent when no wave was sent) and measuring the levels (``bench_s``).
        confirms: for a confirmation run (a fresh re-run of a top configuration after the
            search), the id of the trial it repeats; None for the search's own trials.
        node_id, node_ip: the Ray node the trial ran on (its server too, for process
            backends); None until it started.
    """

    study_id: str
    trial_id: str
    number: int
    params: dict[str, Any]
    state: TrialState
    gpus: int
    score: float | None = None
    reason: TrialReason | None = None
    message: str | None = None
    levels: list[LevelMetrics] = []
    timings: dict[str, float] = {}
    started_at: float | None = None
    # The keys of ``timings``, in the order a trial spends them (views show them so).
    TIMINGS: ClassVar[tuple[str, ...]] = ("deploy_s", "warmup_s", "bench_s")
    ended_at: float | None = None
    confirms: str | None = None
    node_id: str | None = None
    node_ip: str | None = None

    def flag_counts(self) -> dict[str, int]:
        """How many of its levels raised each measurement flag (``client_bound``...)."""
        counts: dict[str, int] = {}
        for level in self.levels:
            for flag in level.flags():
                counts[flag] = counts.get(flag, 0) + 1
        return counts


class StudyRecord(_Record):
    """One study as stored; ``spec`` is the validated spec as a dict.

    ``driver`` names the process that runs it (``host:pid:start time``) and ``heartbeat_at``
    is when that process last said it was alive; a ``running`` study whose driver is gone is
    read back as ``interrupted`` (see :meth:`Store.get_study`).
    """

    study_id: str
    name: str
    spec: dict[str, Any]
    state: StudyState
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    message: str | None = None
    best_trial_id: str | None = None
    driver: str | None = None
    heartbeat_at: float | None = None
    n_trials: int = 0
    n_finished: int = 0


class EventRecord(_Record):
    """Something that happened in a study, in order (``seq`` grows by one per event)."""

    seq: int
    study_id: str
    at: float
    kind: EventKind
    trial_id: str | None = None
    data: dict[str, Any] = {}
