"""Driver-side Ray Tune callbacks: record trials in the store, and tear deployments down.

These run in the driver process, the reliable place: Ray may kill a trial actor before its
``cleanup()`` finishes. They are pickled into the experiment, so they hold only ids and paths.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from tuner.backends.base import Backend, deployment_name
from tuner.store import Store, TrialRecord, TrialState

__all__ = ["StoreCallback", "TeardownCallback"]

logger = logging.getLogger(__name__)


class StoreCallback(Callback):
    """Writes each trial's life to the store as rows and events (the only writer of trials).

    Args:
        store: the store.
        study_id: the study.
        mode: the objective's direction, to keep the study's best trial current.
        confirms: in a confirmation run, the id of each search trial re-run -> its config;
            a trial with that config is recorded with ``confirms`` set and never becomes the
            best trial itself.
        early_stops: the trials the scheduler stopped early, with why (shared with it).
    """

    def __init__(
        self,
        store: Store,
        study_id: str,
        mode: str,
        *,
        confirms: Mapping[str, Mapping[str, Any]] | None = None,
        early_stops: Mapping[str, str] | None = None,
    ) -> None:
        self._store = store
        self._study_id = study_id
        self._mode = mode
        self._confirms = dict(confirms or {})
        self._early_stops = early_stops if early_stops is not None else {}
        self._announced: set[str] = set()

    def _record(self, trial: Trial) -> TrialRecord:
        record = self._store.get_trial(self._study_id, trial.trial_id)
        if record is not None:
            return record
        return TrialRecord(
            study_id=self._study_id,
            trial_id=trial.trial_id,
            number=self._store.next_trial_number(self._study_id),
            params=dict(trial.config),
            state=TrialState.PENDING,
            gpus=_gpus(trial),
            confirms=next(
                (tid for tid, params in self._confirms.items() if params == trial.config), None
            ),
        )

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        # Tune reports a trial as started only once its actor's setup (the deploy, minutes on
        # a cluster) is done; record it as pending as soon as it exists, so users see it.
        for trial in trials:
            if trial.trial_id in self._announced or trial.status != Trial.PENDING:
                continue
            self._announced.add(trial.trial_id)
            if self._store.get_trial(self._study_id, trial.trial_id) is not None:
                continue  # a resumed study's trial: its record stays as it is
            record = self._record(trial)
            self._store.upsert_trial(record)
            self._store.add_event(
                self._study_id,
                "trial_pending",
                trial.trial_id,
                {
                    "number": record.number,
                    "params": record.params,
                    "gpus": record.gpus,
                    "confirms": record.confirms,
                },
            )

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        # A restarted trial (driver resumed) starts over: its earlier levels are dropped.
        record = self._record(trial).model_copy(
            update={
                "state": TrialState.RUNNING,
                "started_at": time.time(),
                "levels": [],
                "score": None,
                "reason": None,
                "message": None,
                "ended_at": None,
                "timings": {},
            }
        )
        self._store.upsert_trial(record)
        self._store.add_event(
            self._study_id,
            "trial_started",
            trial.trial_id,
            {
                "number": record.number,
                "params": record.params,
                "gpus": record.gpus,
                "confirms": record.confirms,
            },
        )

    def on_trial_result(
        self,
        iteration: int,
        trials: list[Trial],
        trial: Trial,
        result: dict[str, Any],
        **info: Any,
    ) -> None:
        record = self._record(trial)
        update: dict[str, Any] = {
            "gpus": int(result.get("gpus", record.gpus)),
            "started_at": float(result.get("started_at") or record.started_at or time.time()),
            "timings": {
                "deploy_s": float(result.get("deploy_s", 0.0)),
                "bench_s": record.timings.get("bench_s", 0.0) + float(result.get("bench_s", 0.0)),
            },
        }
        levels = result.get("levels") or {}
        if levels:
            update["levels"] = [*record.levels, *levels.values()]
        if "score" in result:
            update["score"] = result["score"]
        for scenario, level in levels.items():
            violations = result.get("violations", {}).get(scenario, "")
            self._store.add_event(
                self._study_id,
                "level_measured",
                trial.trial_id,
                {
                    "level": level,
                    "meets_slo": not violations,
                    "violations": violations,
                    "score": result.get("score"),
                },
            )
        if result.get("failed"):
            update.update(
                state=TrialState.FAILED,
                reason=result.get("reason"),
                message=result.get("message"),
                ended_at=time.time(),
            )
        self._store.upsert_trial(record.model_copy(update=update))
        if result.get("failed"):
            self._store.add_event(
                self._study_id,
                "trial_failed",
                trial.trial_id,
                {"reason": result.get("reason"), "message": result.get("message")},
            )
        else:
            self._update_best()

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        record = self._record(trial)
        if record.state == TrialState.FAILED:
            return
        # Tune marks every stopped trial's last result done; only the runner's own flag says
        # the ladder was climbed to its end.
        if (trial.last_result or {}).get("ladder_done"):
            state, reason, message = TrialState.COMPLETED, None, None
        elif trial.trial_id in self._early_stops:
            state, reason = TrialState.STOPPED, "early_stopped"
            message = self._early_stops[trial.trial_id]
        else:
            state, reason, message = TrialState.STOPPED, "stopped", None
        self._store.upsert_trial(
            record.model_copy(
                update={
                    "state": state,
                    "ended_at": time.time(),
                    "reason": reason,
                    "message": message,
                }
            )
        )
        self._store.add_event(
            self._study_id,
            "trial_finished",
            trial.trial_id,
            {
                "state": state.value,
                "score": record.score,
                "reason": reason,
                "confirms": record.confirms,
            },
        )

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        message = _error_text(trial)
        record = self._record(trial).model_copy(
            update={
                "state": TrialState.FAILED,
                "reason": "error",
                "message": message,
                "ended_at": time.time(),
            }
        )
        self._store.upsert_trial(record)
        self._store.add_event(
            self._study_id, "trial_failed", trial.trial_id, {"reason": "error", "message": message}
        )

    def _update_best(self) -> None:
        if self._confirms:  # the confirmation's verdict picks the winner, not one re-run
            return
        scored = [
            t
            for t in self._store.list_trials(self._study_id)
            if t.score is not None and t.state != TrialState.FAILED and t.confirms is None
        ]
        if scored:
            pick = max if self._mode == "max" else min
            best = pick(scored, key=lambda t: t.score or 0.0)
            self._store.set_best(self._study_id, best.trial_id)


class TeardownCallback(Callback):
    """Tears a trial's deployment down when the trial ends, whatever the way, and all of them
    when the experiment ends. Teardown is idempotent, so doubling the actor's is harmless."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def _teardown(self, trial: Trial) -> None:
        name = deployment_name(self._backend.study_id, trial.trial_id)
        # In a thread: a slow teardown (Kubernetes) must not stall Tune's event loop.
        threading.Thread(target=self._safe_teardown, args=(name,), daemon=True).start()

    def _safe_teardown(self, name: str) -> None:
        try:
            self._backend.teardown(name)
        except Exception:  # logged; the end-of-experiment pass and the sweep try again
            logger.exception("teardown of %s failed", name)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._teardown(trial)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._teardown(trial)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        for trial in trials:
            self._safe_teardown(deployment_name(self._backend.study_id, trial.trial_id))


def _gpus(trial: Trial) -> int:
    required = trial.placement_group_factory.required_resources
    return int(max(required.get(Backend.GPU_RESOURCE, 0), required.get("GPU", 0)))


def _error_text(trial: Trial) -> str:
    path = getattr(trial, "error_file", None)
    try:
        text = open(path).read().strip() if path else ""  # noqa: SIM115
    except OSError:
        text = ""
    lines = text.splitlines()
    return (lines[-1] if lines else "the trial raised an error")[:1000]
