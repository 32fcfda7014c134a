"""``TrialRunner``: the Ray Tune trainable. Deploys in ``setup``, one level per ``step``.

A trial actor is stateless beyond its own deployment and never touches the store: each step
returns a result dict, and the driver-side callback records it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ray import tune

from tuner import objective
from tuner.bench.metrics import LevelMetrics
from tuner.exceptions import BackendError, BenchmarkError

if TYPE_CHECKING:
    from tuner.backends.base import Backend, Deployment

__all__ = ["OBJECTIVE_KEY", "TrialRunner", "sentinel"]

# The key Tune's searcher and scheduler read; always a number (see ``sentinel``).
OBJECTIVE_KEY = "objective"


def sentinel(mode: str) -> float:
    """The objective value of a trial with no feasible level: worst possible, but finite."""
    return 0.0 if mode == "max" else 1e12


class TrialRunner(tune.Trainable):
    """One trial: a deployment measured over the concurrency ladder, lowest load first.

    Results carry ``level`` (the LevelMetrics dict), ``meets_slo``, ``score`` (None until a level
    meets the SLO), ``objective`` (score or sentinel), and, on failure, ``failed``, ``reason`` and
    ``message``. A scenario's higher levels are skipped once a level breaks the SLO: more load
    only makes latency worse.
    """

    def setup(self, config: dict[str, Any], backend: Backend | None = None) -> None:
        assert backend is not None, "wrap with tune.with_parameters(TrialRunner, backend=...)"
        self._backend = backend
        self._start(config)

    def _start(self, config: dict[str, Any]) -> None:
        spec = self._backend.spec
        self._params = dict(config)
        self._gpus = spec.gpus_needed(spec.server_config(self._params))
        self._levels: list[LevelMetrics] = []
        self._queue = [(s, c) for s in spec.workload.scenarios for c in spec.workload.concurrency]
        self._failure: dict[str, Any] | None = None
        self._deployment: Deployment | None = None
        self._started_at = time.time()  # before the deploy: the GPUs are held from here
        started = time.monotonic()
        try:
            self._deployment = self._backend.deploy(
                spec.server_config(self._params), trial_id=self.trial_id
            )
            self._backend.wait_ready(self._deployment, spec.backend.startup_timeout_s)
        except BackendError as e:
            self._failure = {"reason": e.reason, "message": str(e)}
        self._deploy_s = time.monotonic() - started

    def step(self) -> dict[str, Any]:
        spec = self._backend.spec
        mode = objective.direction(spec.objective)
        base = {
            "gpus": self._gpus,
            "deploy_s": self._deploy_s,
            "started_at": self._started_at,
            OBJECTIVE_KEY: sentinel(mode),
        }
        if self._failure is not None:
            return {**base, "failed": True, **self._failure, "done": True}
        assert self._deployment is not None
        scenario, concurrency = self._queue.pop(0)
        if dead := self._backend.alive(self._deployment):
            return {**base, "failed": True, "reason": "crash", "message": dead, "done": True}
        started = time.monotonic()
        out_dir = self._backend.workdir / "trials" / self.trial_id / f"{scenario}-c{concurrency}"
        try:
            level = self._backend.measure(
                self._deployment, scenario=scenario, concurrency=concurrency, out_dir=out_dir
            )
        except BenchmarkError as e:
            dead = self._backend.alive(self._deployment)
            reason, message = (
                ("crash", f"{dead} (during the benchmark)") if dead else ("benchmark", str(e))
            )
            return {**base, "failed": True, "reason": reason, "message": message, "done": True}
        self._levels.append(level)
        meets = objective.meets_slo(level, spec.objective)
        if not meets:  # higher load on this scenario can only break the SLO further
            self._queue = [(s, c) for s, c in self._queue if s != scenario]
        score = objective.score(self._levels, spec.objective, self._gpus)
        return {
            **base,
            "level": level.model_dump(),
            "meets_slo": meets,
            "violations": "; ".join(objective.violations(level, spec.objective)),
            "score": score,
            OBJECTIVE_KEY: score if score is not None else sentinel(mode),
            "bench_s": time.monotonic() - started,
            "done": not self._queue,
        }

    def _stop_server(self) -> None:
        if self._deployment is not None:
            self._backend.teardown(self._deployment.name)
            self._deployment = None

    def cleanup(self) -> None:
        self._stop_server()

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        # Actor reuse: the old trial's server goes, the new trial deploys its own.
        self._stop_server()
        self._start(new_config)
        return True

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        # A trial restarts from scratch after a driver crash: a server cannot be checkpointed.
        return None

    def load_checkpoint(self, checkpoint: Any) -> None:
        return None
