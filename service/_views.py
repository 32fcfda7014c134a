"""What the API and the UI show of a study: status with progress and best trial, CSV, config."""

from __future__ import annotations

import csv
import io
import threading
from collections import OrderedDict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tuner.backends import BACKENDS
from tuner.bench.metrics import LevelMetrics
from tuner.spec import StudySpec, spec_from_dict
from tuner.store import StudyRecord, StudyState, TrialRecord

__all__ = ["BestConfig", "StudyView", "best_config", "planned_trials", "study_spec", "study_view",
           "trials_csv"]

# A study's spec never changes, but validating one can take a second (a large grid is
# enumerated): parse each once, and keep its planned trial count for good.
_SPECS: OrderedDict[str, StudySpec] = OrderedDict()
_MAX_SPECS = 256
_PLANNED: dict[tuple[str, str], int | None] = {}
_LOCK = threading.Lock()


class StudyView(StudyRecord):
    """A study as stored, with its progress and its best trial so far."""

    max_trials: int = Field(description="Trials the study plans: the search's budget plus the "
                            "confirmation runs of the best configurations.")
    progress: float = Field(description="Share of the planned trials that finished, 0 to 1.")
    active: bool = Field(description="Queued or running in this service.")
    status: str = Field(description="The state, or ``starting`` while this service prepares a "
                        "queued study's run (Ray, pre-screen).")
    best: TrialRecord | None = Field(None, description="The best trial so far, if any.")


class BestConfig(BaseModel):
    """The best configuration of a study and exactly how to launch it."""

    model_config = ConfigDict(frozen=True)

    study_id: str = Field(description="The study.")
    trial: TrialRecord = Field(description="The best trial.")
    kind: str = Field(description="The backend kind, which decides what ``text`` is.")
    filename: str = Field(description="A file name for ``text``.")
    media_type: str = Field(description="The media type of ``text``.")
    text: str = Field(description="Launch command (twin, local) or InferenceService YAML (ome).")


def study_spec(record: StudyRecord) -> StudySpec:
    """The validated spec of a stored study (cached: a study's spec never changes).

    Raises:
        SpecError: the stored spec no longer validates (written by an older version).
    """
    with _LOCK:
        spec = _SPECS.get(record.study_id)
        if spec is not None and spec.name == record.name:
            _SPECS.move_to_end(record.study_id)
            return spec
    spec = spec_from_dict(record.spec, source=f"study {record.study_id}")
    with _LOCK:
        _SPECS[record.study_id] = spec
        while len(_SPECS) > _MAX_SPECS:
            _SPECS.popitem(last=False)
    return spec


def planned_trials(spec: StudySpec) -> int:
    """Trials a study runs at most: its search budget plus the confirmation runs."""
    confirm = getattr(spec.search, "confirm", None)
    extra = confirm.top_k * confirm.repeats if confirm is not None and confirm.enabled else 0
    return spec.max_trials + extra


def study_view(record: StudyRecord, best: TrialRecord | None, *, active: bool,
               starting: bool = False) -> StudyView:
    """``record`` with its progress and best trial."""
    max_trials = max(_planned(record) or 1, record.n_trials)
    done = record.state == StudyState.COMPLETED
    progress = 1.0 if done else min(1.0, record.n_finished / max(max_trials, 1))
    status = "starting" if starting and record.state == StudyState.QUEUED else \
        record.state.value
    return StudyView(**record.model_dump(), max_trials=max_trials, progress=progress,
                     active=active, status=status, best=best)


def _planned(record: StudyRecord) -> int | None:
    """Planned trials of a study, computed once per study (None: its spec is invalid now)."""
    key = (record.study_id, record.name)
    if key not in _PLANNED:
        try:
            planned: int | None = planned_trials(study_spec(record))
        except ValueError:  # a spec from an older version that no longer validates
            planned = None
        with _LOCK:
            _PLANNED[key] = planned
    return _PLANNED[key]


def best_config(record: StudyRecord, trial: TrialRecord, text: str) -> BestConfig:
    """Wrap a launch text with the file name and media type that fit the backend."""
    kind = str((record.spec.get("backend") or {}).get("kind", "twin"))
    yaml_like = BACKENDS[kind].EXPORT_LANGUAGE == "yaml"
    return BestConfig(
        study_id=record.study_id, trial=trial, kind=kind, text=text,
        filename=f"{record.study_id}-best.{'yaml' if yaml_like else 'sh'}",
        media_type="application/yaml" if yaml_like else "text/x-shellscript")


_TRIAL_COLUMNS = ["trial_id", "number", "state", "reason", "score", "gpus", "started_at",
                  "ended_at"]
# The server's view is nested; its disagreements with genai-bench are in ``client_bound``.
_LEVEL_COLUMNS = [name for name in LevelMetrics.model_fields if name != "server"]


def trials_csv(trials: list[TrialRecord]) -> str:
    """One row per trial and measured level (a trial with no level gets one row):
    trial columns, where its time went, ``param.<name>`` columns, then every level metric."""
    params = sorted({name for t in trials for name in t.params})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*_TRIAL_COLUMNS, *TrialRecord.TIMINGS, *(f"param.{p}" for p in params),
                     "message", *_LEVEL_COLUMNS])
    for t in trials:
        head: list[Any] = [getattr(t, c) for c in _TRIAL_COLUMNS]
        head[2] = t.state.value
        head += [t.timings.get(c) for c in TrialRecord.TIMINGS]
        head += [t.params.get(p, "") for p in params] + [t.message or ""]
        levels: list[LevelMetrics | None] = [*t.levels] or [None]
        for level in levels:
            writer.writerow([_cell(v) for v in head]
                            + [_cell(getattr(level, c, None)) for c in _LEVEL_COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value
