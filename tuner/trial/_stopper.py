"""``StudyStopper``: ends a whole study on request, and a trial past its time limit."""

from __future__ import annotations

from typing import Any

from ray.tune import Stopper

__all__ = ["StudyStopper"]


class StudyStopper(Stopper):
    """Pickled with the experiment, so it holds only the study id, the limit and a reference
    to the module-level set of stop requests (which pickles by reference, not by value)."""

    def __init__(self, study_id: str, trial_timeout_s: float, requests: set[str]) -> None:
        self._study_id = study_id
        self._trial_timeout_s = trial_timeout_s
        self._requests = requests

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        elapsed = float(result.get("time_total_s", 0)) + float(result.get("deploy_s", 0))
        return elapsed > self._trial_timeout_s

    def stop_all(self) -> bool:
        return self._study_id in self._requests
