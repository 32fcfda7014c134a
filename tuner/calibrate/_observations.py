"""The measurements a calibration fits to: every measured level of finished trials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuner.bench.metrics import LevelMetrics
from tuner.exceptions import SpecError
from tuner.spec import GPU_TYPES, StudySpec, spec_from_dict
from tuner.store import Store, TrialState

__all__ = ["Observation", "StudyData", "load_studies"]

# Trials whose levels were measured to the end: a stopped one (early-stopped, budget) keeps
# the levels it finished; a failed one's last level may have been cut short.
_MEASURED = (TrialState.COMPLETED, TrialState.STOPPED)


@dataclass(frozen=True)
class Observation:
    """One measured level and the server flags it was measured with.

    Attributes:
        trial_id: The trial that measured it.
        server_args: The trial's full flag set (the spec's fixed flags and its params).
        gpus: GPUs the trial occupied.
        level: What was measured.
    """

    trial_id: str
    server_args: dict[str, Any]
    gpus: int
    level: LevelMetrics


@dataclass(frozen=True)
class StudyData:
    """A measured study: its spec and the levels to fit to."""

    study_id: str
    spec: StudySpec
    observations: list[Observation]


def load_studies(store: Store, study_ids: list[str], gpu: str | None) -> list[StudyData]:
    """The measured levels of the studies, checked to describe one GPU type and one model.

    Levels measured on an overloaded twin host and levels without a completed request are
    left out: they do not say how the server runs. A client-bound level (genai-bench slower
    than the server) counts with the figures the server vouches for.

    Args:
        store: The study store.
        study_ids: The studies to read.
        gpu: The GPU type the studies ran on, for backends whose spec does not name it.

    Raises:
        StudyNotFoundError: A study is not in the store.
        SpecError: A study ran on the estimator (it measured nothing), the GPU type is
            unknown or differs between studies, the models differ, or nothing was measured.
    """
    found = []
    for study_id in study_ids:
        spec = spec_from_dict(store.get_study(study_id).spec)
        if spec.backend.kind == "estimate":
            raise SpecError(
                f"study '{study_id}' ran on the estimate backend, which measures nothing; "
                "calibrate from studies of a twin, local or ome backend",
                [(study_id, "backend.kind is estimate")],
            )
        observations = [
            Observation(t.trial_id, spec.server_config(t.params), t.gpus, _faithful(level))
            for t in store.list_trials(study_id)
            if t.state in _MEASURED
            for level in t.levels
            if level.num_completed > 0 and not level.host_overloaded
        ]
        found.append(StudyData(study_id, spec, observations))
    _check_same(found, gpu)
    if not any(s.observations for s in found):
        raise SpecError(
            f"no measured level in {', '.join(study_ids)}: their trials failed, or every level "
            "was flagged; calibrate from studies with completed trials",
            [(", ".join(study_ids), "no measured level")],
        )
    return found


def study_gpu(spec: StudySpec, gpu: str | None) -> str:
    """The GPU type a study ran on: ``gpu`` when given, else its backend's.

    Raises:
        SpecError: Neither names one.
    """
    named = gpu or getattr(spec.backend, "gpu", None)
    if named is None:
        raise SpecError(
            f"backend '{spec.backend.kind}' does not name its GPU type; pass --gpu (e.g. H100)",
            [("--gpu", "required for this backend")],
        )
    if named not in GPU_TYPES:
        raise SpecError(
            f"--gpu {named}: the twin does not know this GPU type; use one of "
            f"{', '.join(GPU_TYPES)}",
            [("--gpu", "unknown GPU type")],
        )
    return str(named)


def _faithful(level: LevelMetrics) -> LevelMetrics:
    # The client's figures unless the tuner found them to be the client's own limits.
    return level.as_server_sees() if level.client_bound else level


def _check_same(studies: list[StudyData], gpu: str | None) -> None:
    for what, values in (
        ("GPU type", {s.study_id: study_gpu(s.spec, gpu) for s in studies}),
        ("model", {s.study_id: s.spec.model.name for s in studies}),
    ):
        if len(set(values.values())) > 1:
            listed = ", ".join(f"{k}: {v}" for k, v in values.items())
            raise SpecError(
                f"the studies differ in {what} ({listed}); a profile holds for one GPU type "
                "and one model: calibrate each separately",
                [("STUDY", f"mixed {what}")],
            )
