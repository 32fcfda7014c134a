"""``StudyStopper``: ends a whole study on request, and a trial past its time limit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray.tune import Stopper

if TYPE_CHECKING:
    from tuner._lifecycle import StopToken

__all__ = ["StudyStopper"]


class StudyStopper(Stopper):
    """Stops every trial once ``stop`` is set or a trial is ``stuck`` (it can get no GPUs),
    and a trial whose deploy and levels together took longer than ``trial_timeout_s``
    (recorded in ``timed_out``, read by the store callback to give the trial its reason).
    Runs in the driver, next to the callbacks."""

    def __init__(self, trial_timeout_s: float, stop: StopToken) -> None:
        self._trial_timeout_s = trial_timeout_s
        self._stop = stop
        self.timed_out: dict[str, str] = {}
        self.stuck: dict[str, str] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        elapsed = float(result.get("time_total_s", 0))
        if elapsed > self._trial_timeout_s and not result.get("done"):
            self.timed_out[trial_id] = (
                f"stopped after {elapsed:.0f} s, past search.trial_timeout_s "
                f"({self._trial_timeout_s:.0f} s)"
            )
            return True
        return False

    def stop_all(self) -> bool:
        return self._stop.is_set() or bool(self.stuck)
