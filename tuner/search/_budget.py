"""``GpuBudgetLimiter``: keeps a study's running trials within its own GPU capacity.

Ray's custom resource bounds all studies together (they share the pool); this bounds one
study, whose capacity may be smaller than the pool. A suggestion that does not fit yet is held
back and handed to the next trial slot once enough of the study's GPUs are free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.tune.search import ConcurrencyLimiter, Searcher

__all__ = ["GpuBudgetLimiter"]


class GpuBudgetLimiter(ConcurrencyLimiter):
    """A ConcurrencyLimiter that also counts GPU units.

    The wrapped searcher must implement ``rekey(old_trial_id, new_trial_id)``: a held-back
    suggestion is made for one trial id and given to another.
    """

    def __init__(
        self,
        searcher: Searcher,
        max_concurrent: int,
        capacity: int,
        units: Callable[[dict[str, Any]], int],
    ) -> None:
        super().__init__(searcher, max_concurrent=max_concurrent)
        self._capacity = capacity
        self._units = units
        self._held: tuple[str, dict[str, Any]] | None = None
        self._busy: dict[str, int] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if len(self.live_trials) >= self.max_concurrent:
            return None
        if self._held is None:
            config = self.searcher.suggest(trial_id)
            if not isinstance(config, dict):
                return config
            self._held = (trial_id, config)
        held_id, config = self._held
        need = self._units(config)
        if sum(self._busy.values()) + need > self._capacity:
            return None
        if held_id != trial_id:
            self.searcher.rekey(held_id, trial_id)
        self._held = None
        self._busy[trial_id] = need
        self.live_trials.add(trial_id)
        return config

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self._busy.pop(trial_id, None)
        super().on_trial_complete(trial_id, result=result, error=error)
