"""A study whose backend needs no server (``Backend.IN_PROCESS``: the estimate backend): its
trials climb in the driver, a batch at a time, with no Ray trial per config.

Through Ray Tune each such trial cost about 3 s of actor scheduling and callbacks for under
20 ms of estimating; here a 600-point grid takes seconds (``benchmarks/estimate_grid.py``).
The searchers, the pre-screen, the confirmation and the verdict are those of a Tune study;
only the execution differs, and trials land in the store with the same fields and events.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from tuner import objective
from tuner.events import EventKind, LevelMeasured, TrialAnnounced, TrialFailed, TrialFinished
from tuner.store import TrialRecord, TrialState
from tuner.trial._climb import Climb, climb
from tuner.trial._recording import BestTrial, rerun_number
from tuner.trial._runner import OBJECTIVE_KEY, sentinel
from tuner.trial._tune import StudyRun

__all__ = ["InProcessRun"]

_Event = tuple[EventKind, str | None, dict[str, Any]]


class InProcessRun(StudyRun):
    """A :class:`StudyRun` whose trials run in this process.

    A batch holds as many trials as a Tune study would run at once, so a Bayesian search
    learns from results at the same pace. Every trial climbs its whole ladder (early stopping
    would save milliseconds); the stop token and the time budget are checked between batches.
    """

    def _execute(
        self,
        phase: str,
        *,
        searcher: Any,
        num_samples: int,
        scheduler: Any,
        time_budget_s: float | None,
        confirms: dict[str, dict[str, Any]] | None = None,
        reruns: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        del phase, scheduler
        started = time.monotonic()
        prefix = secrets.token_hex(3)
        recorder = _Recorder(self, self._mode, confirms or {}, dict(reruns or {}))
        count = 0
        while count < num_samples and not self.stop.is_set():
            if time_budget_s is not None and time.monotonic() - started >= time_budget_s:
                break
            batch: dict[str, dict[str, Any]] = {}
            while len(batch) < min(self._max_concurrent(), num_samples - count):
                trial_id = f"{prefix}_{count + len(batch):05d}"
                config = searcher.suggest(trial_id)
                if not isinstance(config, dict):  # Searcher.FINISHED: nothing left to propose
                    break
                batch[trial_id] = config
            if not batch:
                break
            climbs = {tid: climb(self.backend, cfg, trial_id=tid) for tid, cfg in batch.items()}
            recorder.record(climbs)
            for trial_id, result in climbs.items():
                searcher.on_trial_complete(trial_id, _result(result, self._mode))
            count += len(batch)


def _result(result: Climb, mode: str) -> dict[str, Any]:
    """What a searcher reads of a trial, the way the Tune trainable reports it."""
    return {
        OBJECTIVE_KEY: result.score if result.score is not None else sentinel(mode),
        "score": result.score,
        "slo_excess": result.slo_excess,
        "latency": result.latency,
        "failed": result.failed,
        "ladder_done": not result.failed,
    }


class _Recorder:
    """Writes a batch of climbed trials to the store in one transaction, with the events a Tune
    study writes for each (started, each level measured, finished or failed)."""

    def __init__(
        self,
        run: StudyRun,
        mode: str,
        confirms: dict[str, dict[str, Any]],
        reruns: dict[str, dict[str, Any]],
    ) -> None:
        self._run = run
        self._confirms = confirms
        self._reruns: dict[str, Any] = reruns
        self._best = BestTrial(run.store, run.study_id, mode)
        self._next_number = run.store.next_trial_number(run.study_id)

    def record(self, climbs: dict[str, Climb]) -> None:
        run = self._run
        records, events = [], []
        for trial_id, result in climbs.items():
            record, trial_events = self._trial(trial_id, result)
            records.append(record)
            events.extend(trial_events)
        run.store.add_trials(run.study_id, records, events)
        if not self._confirms:  # the confirmation's verdict picks the winner, not one re-run
            for record in records:
                self._best.update(record)

    def _trial(self, trial_id: str, result: Climb) -> tuple[TrialRecord, list[_Event]]:
        run = self._run
        taken = rerun_number(run.store, run.study_id, result.config, self._reruns)
        if taken is None:
            number, replaced = self._next_number, None
            self._next_number += 1
        else:
            number, replaced = taken
        ended = time.time()
        record = TrialRecord(
            study_id=run.study_id,
            trial_id=trial_id,
            number=number,
            params=dict(result.config),
            state=TrialState.FAILED if result.failed else TrialState.COMPLETED,
            gpus=result.gpus,
            score=result.score,
            reason=result.reason,
            message=result.message,
            levels=result.levels,
            timings={"deploy_s": 0.0, "bench_s": result.seconds},
            started_at=ended - result.seconds,
            ended_at=ended,
            confirms=next(
                (tid for tid, config in self._confirms.items() if config == result.config), None
            ),
        )
        announced: TrialAnnounced = {
            "number": number,
            "params": record.params,
            "gpus": record.gpus,
            "confirms": record.confirms,
            "reruns": replaced,
        }
        events: list[_Event] = [(EventKind.TRIAL_STARTED, trial_id, dict(announced))]
        for level in result.levels:
            broken = objective.violations(level, run.spec.objective)
            measured: LevelMeasured = {
                "level": level.model_dump(mode="json"),
                "meets_slo": not broken,
                "violations": "; ".join(broken),
                "score": result.score,
            }
            events.append((EventKind.LEVEL_MEASURED, trial_id, dict(measured)))
        if result.failed:
            assert result.reason is not None
            failed: TrialFailed = {"reason": result.reason.value, "message": result.message}
            events.append((EventKind.TRIAL_FAILED, trial_id, dict(failed)))
        else:
            finished: TrialFinished = {
                "state": record.state.value,
                "score": record.score,
                "reason": result.reason.value if result.reason else None,
                "message": result.message,
                "confirms": record.confirms,
            }
            events.append((EventKind.TRIAL_FINISHED, trial_id, dict(finished)))
        return record, events
