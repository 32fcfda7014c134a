"""Early stopping on the concurrency ladder: stop a trial between levels once it cannot win.

A trial's score can only grow by climbing to higher loads, and how far it can grow follows
from how servers behave under load. With closed-loop clients, throughput rises with
concurrency ever more slowly until the server saturates (it is concave in concurrency), while
latency rises ever faster as queues build (it is convex). So from the last two levels
measured: throughput cannot rise more steeply than it just did, and the SLO excess cannot rise
more slowly, which caps the load at which the trial can still meet the SLO. ``LadderRule``
bounds the trial's final score by the throughput it could reach at that load, with slack for
noise and for kinks in both curves (CUDA graph sizes, batching thresholds), and stops the
trial when even the bound stays below the best score so far. For a latency score the rule is
simpler still: latency never improves with load, so a trial already worse than the best
stops.

Unlike ASHA or a median rule, this never stops a trial for being average at low load, which
on a serving ladder says little about the top: the best config is often unremarkable at the
lowest levels and ahead only where the others start to break the SLO. What it stops are the
trials that have flattened out (a small ``max_running_requests``, a saturated server) well
below the best.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from tuner.trial import OBJECTIVE_KEY

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

__all__ = ["LadderRule", "LadderScheduler"]

# Throughput may rise this much more steeply than it last did (the curve is not perfectly
# concave).
_SLOPE_SLACK = 1.25
# The SLO excess rises at least this share as fast as it last did (nor is it perfectly convex).
_RISE_SLACK = 0.5
# Run-to-run noise a level's value may carry.
_NOISE = 0.05


class LadderRule:
    """The stopping decision, free of Ray so benchmarks and tests drive it directly.

    Args:
        mode: ``max`` or ``min``, the objective's direction.
        loads: the concurrency ladder, lowest first.
    """

    def __init__(self, mode: str, loads: Sequence[int]) -> None:
        self._max = mode == "max"
        self._loads = list(loads)
        # trial id -> (score metric, SLO excess) per level measured
        self._running: dict[str, list[tuple[float, float | None]]] = {}
        self._best: float | None = None

    def report(
        self,
        trial_id: str,
        score: float,
        *,
        level_value: float | None,
        level_excess: float | None = None,
        final: bool,
    ) -> str | None:
        """Record a trial after its next level.

        Args:
            trial_id: the trial.
            score: its objective so far (score, or the sentinel while it has none).
            level_value: the score metric at the level just measured, met or not.
            level_excess: the SLO excess at that level (see
                :func:`~tuner.objective.slo_excess`); None: not known.
            final: whether the trial has nothing left to measure.

        Returns:
            Why the trial should stop now, or None to let it climb.
        """
        values = self._running.setdefault(trial_id, [])
        if level_value is not None:
            values.append((level_value, level_excess))
        if final:
            self._running.pop(trial_id)
            if self._best is None or (score > self._best if self._max else score < self._best):
                self._best = score
            return None
        if self._best is None or not values or len(values) >= len(self._loads):
            return None
        hope = self._hope(score, values)
        if (hope >= self._best) if self._max else (hope <= self._best):
            return None
        self._running.pop(trial_id)
        return (
            f"at concurrency {self._loads[len(values) - 1]} it can reach at most "
            f"{hope:.4g}, {'below' if self._max else 'above'} the best so far "
            f"({self._best:.4g})"
        )

    def _hope(self, score: float, levels: list[tuple[float, float | None]]) -> float:
        """The best final score a trial at ``score`` with these levels can still get."""
        if not self._max:
            return score / (1 + _NOISE)
        level = len(levels) - 1
        load = self._loads[level]
        value, excess = levels[-1]
        below, below_excess = levels[-2] if level else (0.0, None)
        below_load = self._loads[level - 1] if level else 0
        reach = self._loads[-1]
        if excess is not None and below_excess is not None:
            rise = (excess - below_excess) / (load - below_load)
            if rise > 0:  # the SLO breaks past this load at the latest
                limit = load - excess / (_RISE_SLACK * rise)
                reach = max([c for c in self._loads if c <= limit], default=load)
        slope = max(value - below, 0.0) / (load - below_load)
        bound = value + _SLOPE_SLACK * slope * max(reach - load, 0)
        return max(score, bound) * (1 + _NOISE)

    def forget(self, trial_id: str) -> None:
        """Drop a trial that failed or was removed: its partial climb teaches nothing."""
        self._running.pop(trial_id, None)


class LadderScheduler(FIFOScheduler):
    """Ray Tune's side of :class:`LadderRule`: results in, STOP or CONTINUE out.

    ``stopped`` maps each trial it stopped to why, for the store's records; it is shared by
    reference with the store callback, in the driver.
    """

    def __init__(self, mode: str, loads: Sequence[int]) -> None:
        super().__init__()
        self._rule = LadderRule(mode, loads)
        self.stopped: dict[str, str] = {}

    def _report(self, trial: Trial, result: Mapping[str, Any], *, final: bool) -> str | None:
        return self._rule.report(
            trial.trial_id,
            float(result[OBJECTIVE_KEY]),
            level_value=result.get("rung_value"),
            level_excess=result.get("rung_excess"),
            final=final,
        )

    def on_trial_result(
        self, tune_controller: Any, trial: Trial, result: Mapping[str, Any]
    ) -> str:
        # A trial's last result (done) skips this and arrives in on_trial_complete.
        if result.get("placed"):  # where it runs, before any level: nothing to rank
            return TrialScheduler.CONTINUE
        if result.get("failed"):
            self._rule.forget(trial.trial_id)
            return TrialScheduler.CONTINUE
        why = self._report(trial, result, final=False)
        if why is None:
            return TrialScheduler.CONTINUE
        self.stopped[trial.trial_id] = why
        return TrialScheduler.STOP

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self._rule.forget(trial.trial_id)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._rule.forget(trial.trial_id)

    def on_trial_complete(
        self, tune_controller: Any, trial: Trial, result: Mapping[str, Any]
    ) -> None:
        if result and result.get("ladder_done") and not result.get("failed"):
            self._report(trial, result, final=True)
        else:  # failed, or stopped (by this rule, a timeout, the user): nothing to learn
            self._rule.forget(trial.trial_id)
