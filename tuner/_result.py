"""What a study measured, as stored, and what follows from it (best, Pareto front, verdict)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tuner import backends, objective
from tuner._home import default_home
from tuner.spec import StudySpec, spec_from_dict
from tuner.store import Store, StudyRecord, TrialRecord, TrialState

if TYPE_CHECKING:
    import pandas

    from tuner.bench.metrics import LevelMetrics
    from tuner.search import Verdict

__all__ = ["StudyResult", "launch_text"]


@dataclass(frozen=True)
class StudyResult:
    """What a study measured, as stored, and what follows from it.

    Load one with :meth:`load`; the API, the CLI and Python callers all read results this way.

    Attributes:
        study: the study record (state, times, best trial id).
        trials: the search's trials, in creation order.
        confirmations: the confirmation runs (re-runs of the top configurations after the
            search, each with ``confirms`` set to the trial it repeats).
    """

    study: StudyRecord
    trials: list[TrialRecord]
    confirmations: list[TrialRecord] = field(default_factory=list)

    @classmethod
    def load(cls, store: Store, study_id: str) -> StudyResult:
        """The stored result of a study, finished or not.

        Raises:
            StudyNotFoundError: there is no such study.
        """
        study = store.get_study(study_id)
        trials = store.list_trials(study_id)
        return cls(
            study=study,
            trials=[t for t in trials if t.confirms is None],
            confirmations=[t for t in trials if t.confirms is not None],
        )

    @property
    def spec(self) -> StudySpec:
        """The spec the study ran."""
        return spec_from_dict(self.study.spec)

    @property
    def best(self) -> TrialRecord | None:
        """The trial with the best score, or None when no trial met the SLO."""
        return next((t for t in self.trials if t.trial_id == self.study.best_trial_id), None)

    @property
    def best_launch(self) -> str | None:
        """The exact launch command (or manifest) of the best configuration."""
        best = self.best
        return launch_text(self.spec, best.params) if best else None

    @cached_property
    def pareto(self) -> list[dict[str, Any]]:
        """The Pareto front of a multi-objective study (``objective.pareto`` set): the operating
        points (trial x concurrency level meeting the SLO) that no other point beats on both
        the score and the latency, by ascending latency. Each has ``trial``, ``number``,
        ``params``, ``gpus``, ``concurrency``, ``score`` and ``latency``. Empty for a
        single-objective study."""
        spec = self.spec
        points = []
        for trial in self.trials:
            if trial.state == TrialState.FAILED:
                continue
            for point in objective.operating_points(
                trial.levels, spec.objective, trial.gpus, spec.workload
            ):
                points.append(
                    {
                        "trial": trial.trial_id,
                        "number": trial.number,
                        "params": trial.params,
                        "gpus": trial.gpus,
                        **point,
                    }
                )
        return objective.pareto_front(points, spec.objective)

    @cached_property
    def confirmation(self) -> Verdict | None:
        """The verdict of the confirmation runs, or None when there were none."""
        from tuner.search import judge

        return judge([*self.trials, *self.confirmations], self.spec)

    @cached_property
    def importance(self) -> dict[str, float]:
        """How much each searched flag moved the score (summing to 1, largest first); empty
        with too few trials."""
        from tuner.search import param_importance

        return param_importance(self.spec, self.trials)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON: what ``autotuner ... --json`` prints and the API's
        ``/api/studies/{id}/result`` returns (``study``, ``state``, ``best`` with its params,
        score, scoring level and launch text, ``trials``, ``confirmations``, the
        ``confirmation`` verdict, ``pareto`` and ``importance``)."""
        best = self.best
        verdict = self.confirmation
        return {
            "study": self.study.study_id,
            "state": self.study.state.value,
            "best": None
            if best is None
            else {
                "trial": best.trial_id,
                "params": best.params,
                "score": best.score,
                "metrics": _dump(objective.best_level(best.levels, self.spec.objective)),
                "launch": self.best_launch,
            },
            "trials": [
                {
                    "id": t.trial_id,
                    "number": t.number,
                    "params": t.params,
                    "status": t.state.value,
                    "reason": t.reason.value if t.reason else None,
                    "message": t.message,
                    "score": t.score,
                    "node": t.node_ip,
                    "started_at": t.started_at,
                    "ended_at": t.ended_at,
                }
                for t in self.trials
            ],
            "confirmations": [
                {
                    "id": t.trial_id,
                    "number": t.number,
                    "confirms": t.confirms,
                    "status": t.state.value,
                    "reason": t.reason.value if t.reason else None,
                    "score": t.score,
                }
                for t in self.confirmations
            ],
            "confirmation": verdict.to_dict() if verdict is not None else None,
            "pareto": self.pareto,
            "importance": self.importance,
        }

    @property
    def trials_df(self) -> pandas.DataFrame:
        """One row per trial: id, state, reason, score, params (``param.<name>``), and the best
        level's throughput and latencies."""
        import pandas

        rows = []
        for t in self.trials:
            row: dict[str, Any] = {
                "trial": t.trial_id,
                "number": t.number,
                "state": t.state.value,
                "reason": t.reason,
                "score": t.score,
                "gpus": t.gpus,
                "started_at": t.started_at,
                "ended_at": t.ended_at,
            }
            row.update({f"param.{k}": v for k, v in t.params.items()})
            row["levels"] = len(t.levels)
            rows.append(row)
        return pandas.DataFrame(rows)


def _dump(level: LevelMetrics | None) -> dict[str, Any] | None:
    return None if level is None else level.model_dump(mode="json")


def launch_text(spec: StudySpec, params: dict[str, Any]) -> str:
    """Exactly what a trial with these parameters runs: a command line or a manifest."""
    backend = backends.make(spec, study_id=spec.name, workdir=default_home() / "render")
    return backend.describe(spec.server_config(params))
