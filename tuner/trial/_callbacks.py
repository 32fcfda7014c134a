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

from tuner._nodes import node_answers, node_units, sweep_everywhere, teardown_on
from tuner.backends.base import Backend, deployment_name
from tuner.bench.metrics import LevelMetrics
from tuner.events import EventKind, LevelMeasured, TrialAnnounced, TrialFailed, TrialFinished
from tuner.store import Store, TrialReason, TrialRecord, TrialState
from tuner.trial._recording import BestTrial, rerun_number

__all__ = ["StoreCallback", "TeardownCallback"]

logger = logging.getLogger(__name__)


class StoreCallback(Callback):
    """Writes each trial's life to the store as rows and events (the only writer of trials).

    A finished trial is never written again: events Tune sends about it afterwards (a late
    result, a stop racing a failure) are ignored.

    Args:
        store: the store.
        study_id: the study.
        mode: the objective's direction, to keep the study's best trial current.
        confirms: in a confirmation run, the id of each search trial re-run -> its config;
            a trial with that config is recorded with ``confirms`` set and never becomes the
            best trial itself.
        reruns: in a resumed study, the trials the dead driver left unfinished -> their
            configs; the first new trial with such a config takes the old trial's place
            (and number), so each is counted once.
        early_stops: the trials the scheduler stopped early, with why (shared with it).
        timeouts: the trials the stopper ended for running too long, with why (shared).
        stuck: filled here with the trials that waited longer than ``pending_timeout_s`` for
            their GPUs, with why; the stopper ends the study when it is not empty (shared).
        pending_timeout_s: see ``search.pending_timeout_s``.
    """

    def __init__(
        self,
        store: Store,
        study_id: str,
        mode: str,
        *,
        confirms: Mapping[str, Mapping[str, Any]] | None = None,
        reruns: Mapping[str, Mapping[str, Any]] | None = None,
        early_stops: Mapping[str, str] | None = None,
        timeouts: Mapping[str, str] | None = None,
        stuck: dict[str, str] | None = None,
        pending_timeout_s: float | None = None,
    ) -> None:
        self._store = store
        self._study_id = study_id
        self._confirms = dict(confirms or {})
        self._reruns = dict(reruns or {})
        self._early_stops = early_stops if early_stops is not None else {}
        self._timeouts = timeouts if timeouts is not None else {}
        self._stuck = stuck if stuck is not None else {}
        self._pending_timeout_s = pending_timeout_s
        self._pending_since: dict[str, float] = {}
        self._best = BestTrial(store, study_id, mode)

    def _record(self, trial: Trial) -> TrialRecord | None:
        """The stored trial, created (and announced) on first sight; None once finished."""
        record = self._store.get_trial(self._study_id, trial.trial_id)
        if record is not None:
            return None if record.state.is_finished() else record
        params = dict(trial.config)
        taken = rerun_number(self._store, self._study_id, params, self._reruns)
        number, replaced = taken or (self._store.next_trial_number(self._study_id), None)
        record = TrialRecord(
            study_id=self._study_id,
            trial_id=trial.trial_id,
            number=number,
            params=params,
            state=TrialState.PENDING,
            gpus=_gpus(trial),
            confirms=next(
                (tid for tid, config in self._confirms.items() if dict(config) == params), None
            ),
        )
        self._store.upsert_trial(record)
        self._announce(EventKind.TRIAL_PENDING, record, replaced)
        return record

    def _announce(self, kind: EventKind, record: TrialRecord, reruns: str | None) -> None:
        payload: TrialAnnounced = {
            "number": record.number,
            "params": record.params,
            "gpus": record.gpus,
            "confirms": record.confirms,
            "reruns": reruns,
        }
        self._store.add_event(self._study_id, kind, record.trial_id, payload)

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        # A trial waiting for GPUs is recorded as pending as soon as it exists, so users see it.
        now = time.monotonic()
        for trial in trials:
            if trial.status != Trial.PENDING:
                self._pending_since.pop(trial.trial_id, None)
                continue
            if trial.trial_id not in self._pending_since:
                self._pending_since[trial.trial_id] = now
                self._record(trial)
            waited = now - self._pending_since[trial.trial_id]
            limit = self._pending_timeout_s
            if limit is not None and waited > limit and trial.trial_id not in self._stuck:
                self._unschedulable(trial, waited)

    def _unschedulable(self, trial: Trial, waited: float) -> None:
        wanted = {k: v for k, v in _required(trial).items() if v and k.lower() != "cpu"}
        sizes = {k: sorted(node_units(k).values(), reverse=True) for k in wanted}
        message = (
            f"waited {waited:.0f} s (search.pending_timeout_s) for {wanted} on one node; the "
            f"live nodes have {sizes}. Add nodes or units, or free the pool"
        )
        self._stuck[trial.trial_id] = message
        record = self._record(trial)
        if record is not None:
            self._fail(record, {}, TrialReason.UNSCHEDULABLE, message)

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        record = self._record(trial)
        if record is None or record.state != TrialState.PENDING:
            return
        record = record.model_copy(update={"state": TrialState.RUNNING, "started_at": time.time()})
        self._store.upsert_trial(record)
        self._announce(EventKind.TRIAL_STARTED, record, None)

    def on_trial_result(
        self,
        iteration: int,
        trials: list[Trial],
        trial: Trial,
        result: dict[str, Any],
        **info: Any,
    ) -> None:
        record = self._record(trial)
        if record is None:
            return
        if result.get("placed"):  # the node, known before the trial deploys anything
            node = {"node_id": result.get("node_id"), "node_ip": result.get("node_ip")}
            self._store.upsert_trial(record.model_copy(update=node))
            return
        update: dict[str, Any] = {
            "gpus": int(result.get("gpus", record.gpus)),
            "started_at": float(result.get("started_at") or record.started_at or time.time()),
            "timings": {
                **record.timings,
                "deploy_s": float(result.get("deploy_s", 0.0)),
                "bench_s": record.timings.get("bench_s", 0.0) + float(result.get("bench_s", 0.0)),
            },
        }
        if warmed := result.get("warmup"):
            update["timings"]["warmup_s"] = float(warmed["seconds"])
            self._store.add_event(
                self._study_id, EventKind.TRIAL_WARMED_UP, trial.trial_id, warmed
            )
        levels = result.get("levels") or {}
        if levels:
            new = [LevelMetrics.model_validate(level) for level in levels.values()]
            update["levels"] = [*record.levels, *new]
        if "score" in result:
            update["score"] = result["score"]
        for scenario, level in levels.items():
            violations = result.get("violations", {}).get(scenario, "")
            measured: LevelMeasured = {
                "level": level,
                "meets_slo": not violations,
                "violations": violations,
                "score": result.get("score"),
            }
            self._store.add_event(
                self._study_id, EventKind.LEVEL_MEASURED, trial.trial_id, measured
            )
        if result.get("failed"):
            self._fail(record, update, TrialReason(result["reason"]), result.get("message"))
            return
        if result.get("reason"):  # measured to the end without a score: why, kept for the end
            update.update(reason=TrialReason(result["reason"]), message=result.get("message"))
        updated = record.model_copy(update=update)
        self._store.upsert_trial(updated)
        self._update_best(updated)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        record = self._record(trial)
        if record is None:
            return
        # Tune marks every stopped trial's last result done; only the runner's own flag says
        # the ladder was climbed to its end.
        reason, message = record.reason, record.message
        if (trial.last_result or {}).get("ladder_done"):
            state = TrialState.COMPLETED
        elif trial.trial_id in self._early_stops:
            state, reason = TrialState.STOPPED, TrialReason.EARLY_STOPPED
            message = self._early_stops[trial.trial_id]
        elif trial.trial_id in self._timeouts:
            state, reason = TrialState.STOPPED, TrialReason.TIMEOUT
            message = self._timeouts[trial.trial_id]
        else:
            state, reason, message = TrialState.STOPPED, TrialReason.STOPPED, None
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
        finished: TrialFinished = {
            "state": state.value,
            "score": record.score,
            "reason": reason.value if reason else None,
            "message": message,
            "confirms": record.confirms,
        }
        self._store.add_event(self._study_id, EventKind.TRIAL_FINISHED, trial.trial_id, finished)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        record = self._record(trial)
        if record is not None:
            reason, message = _lost(record, trial)
            self._fail(record, {}, reason, message)

    def on_trial_recover(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        # Tune runs it again from scratch (search.node_loss_retries): what it measured goes.
        record = self._record(trial)
        if record is None:
            return
        reason, message = _lost(record, trial)
        self._store.upsert_trial(
            record.model_copy(
                update={
                    "state": TrialState.PENDING,
                    "levels": [],
                    "score": None,
                    "timings": {},
                    "reason": None,
                    "message": f"run again: {message}",  # kept, so the row says why
                }
            )
        )
        retried: TrialFailed = {"reason": reason.value, "message": message}
        self._store.add_event(self._study_id, EventKind.TRIAL_RETRIED, trial.trial_id, retried)

    def _fail(
        self,
        record: TrialRecord,
        update: dict[str, Any],
        reason: TrialReason,
        message: str | None,
    ) -> None:
        update = {
            **update,
            "state": TrialState.FAILED,
            "reason": reason,
            "message": message,
            "ended_at": time.time(),
        }
        failed_record = record.model_copy(update=update)
        self._store.upsert_trial(failed_record)
        failed: TrialFailed = {"reason": reason.value, "message": message}
        self._store.add_event(self._study_id, EventKind.TRIAL_FAILED, record.trial_id, failed)
        self._update_best(failed_record)  # a failed trial is no longer a candidate

    def _update_best(self, record: TrialRecord) -> None:
        if not self._confirms:  # the confirmation's verdict picks the winner, not one re-run
            self._best.update(record)


class TeardownCallback(Callback):
    """Tears a trial's deployment down when the trial ends, whatever the way, on the node that
    holds it, and sweeps every node when the experiment ends. Teardown is idempotent, so
    doubling the actor's own is harmless."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def _teardown(self, trial: Trial) -> None:
        name = deployment_name(self._backend.study_id, trial.trial_id)
        node = (trial.last_result or {}).get("node_id")
        # In a thread: a slow teardown (Kubernetes, a far node) must not stall Tune's loop.
        threading.Thread(target=self._safe_teardown, args=(name, node), daemon=True).start()

    def _safe_teardown(self, name: str, node: str | None) -> None:
        try:
            teardown_on(self._backend, name, node)
        except Exception:  # logged; the end-of-experiment sweep tries again
            logger.exception("teardown of %s failed", name)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._teardown(trial)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._teardown(trial)

    def on_trial_recover(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._teardown(trial)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        try:
            sweep_everywhere(self._backend)
        except Exception:  # logged; the study's closing sweep tries again
            logger.exception("sweep of study %s failed", self._backend.study_id)


def _required(trial: Trial) -> dict[str, float]:
    return dict(trial.placement_group_factory.required_resources)


def _gpus(trial: Trial) -> int:
    required = _required(trial)
    return int(max(required.get(Backend.GPU_RESOURCE, 0), required.get("GPU", 0)))


def _lost(record: TrialRecord, trial: Trial) -> tuple[TrialReason, str]:
    """Why Tune lost a trial: its node left the cluster, or its actor died (or a bug)."""
    text = _error_text(trial)
    node = record.node_id or (trial.last_result or {}).get("node_id")
    if node and not node_answers(node):
        where = f"{record.node_ip or '?'} ({node[:12]})"
        return TrialReason.NODE_LOST, f"its node {where} left the cluster: {text}"
    return TrialReason.ERROR, text


def _error_text(trial: Trial) -> str:
    path = getattr(trial, "error_file", None)
    try:
        text = open(path).read().strip() if path else ""  # noqa: SIM115
    except OSError:
        text = ""
    lines = text.splitlines()
    return (lines[-1] if lines else "the trial raised an error")[:1000]
