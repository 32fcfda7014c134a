"""A fake tuner driver for service tests: writes trials and events like the real one, in ms."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from service import Driver
from tuner import StopToken, finish_study, objective
from tuner._lifecycle import DriverLease
from tuner.bench.metrics import LevelMetrics
from tuner.events import EventKind
from tuner.spec import RangeSpec, StudySpec
from tuner.store import Store, StudyRecord, StudyState, TrialReason, TrialRecord, TrialState

QUICK_SPEC: dict[str, Any] = {
    "name": "svc-test",
    "model": {"name": "Llama-3.1-8B-Instruct"},
    "backend": {"kind": "twin", "gpu": "H100", "gpus": 2},
    "space": {"tp_size": [1, 2], "max_running_requests": [8, 32]},
    "workload": {"scenarios": ["D(256,128)"], "concurrency": [4, 16]},
    "objective": {"metric": "goodput", "per_gpu": True,
                  "slo": {"ttft_p99_ms": 400, "tpot_p99_ms": 40}},
    "search": {"algorithm": "grid", "prescreen": None, "confirm": {"top_k": 0}},
}


def level(scenario: str, concurrency: int, params: dict[str, Any]) -> dict[str, Any]:
    """Made-up but plausible level metrics for a config at a concurrency."""
    tp = int(params.get("tp_size", 1))
    mrr = int(params.get("max_running_requests", 32))
    rate = 900.0 * tp * concurrency / (concurrency + 20) * (1 + min(mrr, 64) / 256)
    ttft = 80.0 + 22.0 * concurrency / tp
    tpot = 9.0 + 1.6 * concurrency / tp
    values: dict[str, Any] = {
        "scenario": scenario, "concurrency": concurrency, "num_requests": 40,
        "num_completed": 40, "num_errors": 0, "error_rate": 0.0, "duration_s": 10.0,
        "output_throughput": rate, "input_throughput": rate * 2, "total_throughput": rate * 3,
        "requests_per_second": rate / 128}
    for name, base in (("ttft", ttft), ("tpot", tpot), ("e2e", ttft + 128 * tpot)):
        for pct, factor in (("mean", 0.8), ("p50", 0.75), ("p90", 0.95), ("p95", 0.98),
                            ("p99", 1.0)):
            values[f"{name}_{pct}_ms"] = base * factor
    return LevelMetrics(**values).model_dump()


class FakeDriver(Driver):
    """Runs a study's grid (or the first ``max_trials`` configs) with made-up metrics.

    Args:
        level_delay: seconds each level takes.
        hold: while cleared, a running study waits before each level (tests use it to keep a
            study running); stop requests end the wait.
        fail_numbers: trial numbers that fail with reason ``oom``.
    """

    def __init__(self, *, level_delay: float = 0.01, hold: threading.Event | None = None,
                 fail_numbers: tuple[int, ...] = ()) -> None:
        self.level_delay = level_delay
        self.hold = hold
        self.fail_numbers = fail_numbers
        self.ray_inits = 0
        self.runs: list[tuple[str, bool]] = []

    def create_study(self, spec: StudySpec, *, store: Store) -> StudyRecord:
        return store.create_study(f"{spec.name}-{secrets.token_hex(3)}", spec.name,
                                  spec.model_dump(mode="json"))

    def init_ray(self, *, gpus: int, dashboard: bool) -> str | None:
        self.ray_inits += 1
        return "http://127.0.0.1:8265" if dashboard else None

    def launch_text(self, spec: StudySpec, params: dict[str, Any]) -> str:
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in
                         {**spec.fixed, **params}.items())
        return f"python -m sglang.launch_server --model-path {spec.model.model_path} {flags}"

    def configs(self, spec: StudySpec) -> list[dict[str, Any]]:
        if spec.search.algorithm == "grid":
            return list(spec.grid())[: spec.max_trials]
        out = []
        for i in range(spec.max_trials):
            config: dict[str, Any] = {}
            for name, values in spec.space.items():
                if isinstance(values, RangeSpec):
                    config[name] = values.low
                else:
                    config[name] = values[i % len(values)]
            out.append(config)
        return out

    def _wait(self, stop: StopToken) -> bool:
        """Wait for the level to take place; False when the study was asked to stop."""
        deadline = time.monotonic() + self.level_delay
        while True:
            if stop.is_set():
                return False
            held = self.hold is not None and not self.hold.is_set()
            if not held and time.monotonic() >= deadline:
                return True
            time.sleep(0.005)

    def run_study(self, spec: StudySpec, *, store: Store, study_id: str, resume: bool,
                  stop: StopToken) -> None:
        """Like :func:`tuner.run_study`: holds the study's lease, writes trials and events
        with the real kinds, and ends through :func:`tuner.finish_study`."""
        self.runs.append((study_id, resume))
        with DriverLease(store, study_id):
            stopped = self._trials(spec, store, study_id, resume, stop)
            finish_study(store, study_id, StudyState.STOPPED if stopped else StudyState.COMPLETED)

    def _trials(self, spec: StudySpec, store: Store, study_id: str, resume: bool,
                stop: StopToken) -> bool:
        """Run the configs not finished yet; whether the study was stopped."""
        store.add_event(study_id, EventKind.STUDY_STARTED,
                        data={"resumed": resume, "swept": {}, "reruns": [],
                              "cautions": spec.cautions()})
        done = {repr(sorted(t.params.items())) for t in store.list_trials(study_id)
                if t.state.is_finished() and t.state != TrialState.STOPPED}
        for params in self.configs(spec):
            if repr(sorted(params.items())) in done:
                continue
            if stop.is_set():
                return True
            number = store.next_trial_number(study_id)
            trial = TrialRecord(study_id=study_id, trial_id=f"t{number:03d}", number=number,
                                params=params, state=TrialState.RUNNING,
                                gpus=spec.gpus_needed(params), started_at=time.time())
            store.upsert_trial(trial)
            store.add_event(study_id, EventKind.TRIAL_STARTED, trial.trial_id,
                            {"number": number, "params": params, "gpus": trial.gpus,
                             "confirms": None, "reruns": None})
            if number in self.fail_numbers:
                trial = trial.model_copy(update={
                    "state": TrialState.FAILED, "reason": TrialReason.OOM,
                    "message": "CUDA out of memory (fake)", "ended_at": time.time()})
                store.upsert_trial(trial)
                store.add_event(study_id, EventKind.TRIAL_FAILED, trial.trial_id,
                                {"reason": "oom", "message": trial.message})
                continue
            levels: list[LevelMetrics] = []
            stopped = False
            for scenario in spec.workload.scenarios:
                for concurrency in spec.workload.concurrency:
                    if not self._wait(stop):
                        stopped = True
                        break
                    metrics = LevelMetrics(**level(scenario, concurrency, params))
                    levels.append(metrics)
                    score = objective.score(levels, spec.objective, trial.gpus)
                    trial = trial.model_copy(update={
                        "levels": [m.model_dump() for m in levels], "score": score})
                    store.upsert_trial(trial)
                    store.add_event(study_id, EventKind.LEVEL_MEASURED, trial.trial_id, {
                        "level": metrics.model_dump(), "score": score, "violations": "",
                        "meets_slo": objective.meets_slo(metrics, spec.objective)})
                    self._update_best(store, study_id, spec)
            state = TrialState.STOPPED if stopped else TrialState.COMPLETED
            trial = trial.model_copy(update={
                "state": state, "ended_at": time.time(),
                "reason": TrialReason.STOPPED if stopped else None,
                "timings": {"deploy_s": 12.5, "warmup_s": 0.25, "bench_s": 3.0 * len(levels)}})
            store.upsert_trial(trial)
            store.add_event(study_id, EventKind.TRIAL_FINISHED, trial.trial_id,
                            {"state": state.value, "score": trial.score,
                             "reason": trial.reason, "message": None, "confirms": None})
            if stopped:
                return True
        return False

    @staticmethod
    def _update_best(store: Store, study_id: str, spec: StudySpec) -> None:
        scored = [t for t in store.list_trials(study_id) if t.score is not None]
        if scored:
            pick = max if objective.direction(spec.objective) == "max" else min
            store.set_best(study_id, pick(scored, key=lambda t: t.score or 0.0).trial_id)
