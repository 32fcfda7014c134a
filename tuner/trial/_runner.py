"""``TrialRunner``: the Ray Tune trainable. Deploys in its first ``step``, one rung per step.

A trial actor is stateless beyond its own deployment and never touches the store: each step
returns a result dict, and the driver-side callback records it.

Why the first step and not ``setup``: Tune may start an actor for a trial and then hand the
trial to a cached actor instead, killing the first mid-``setup``. A deploy there would leave
two actors deploying the same trial. Tune calls ``step`` only on the actor it runs the trial
on, so one trial gets one deployment, owned by that actor.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import ray
from ray import tune

from tuner import objective
from tuner.backends.base import current_node
from tuner.bench import warmup
from tuner.bench.metrics import LevelMetrics
from tuner.exceptions import BackendError, BenchmarkError, ServerExitedError
from tuner.store import TrialReason
from tuner.workload import dataset_lengths

if TYPE_CHECKING:
    from tuner.backends.base import Backend, Deployment

__all__ = ["OBJECTIVE_KEY", "TrialRunner", "sentinel"]

logger = logging.getLogger(__name__)
# Seconds a server whose warm-up requests were cut off gets to exit before the first level.
_EXIT_GRACE_S = 5.0
# The key Tune's searcher and scheduler read; always a number (see ``sentinel``).
OBJECTIVE_KEY = "objective"


def sentinel(mode: str) -> float:
    """The objective value of a trial with no feasible level: worst possible, but finite."""
    return 0.0 if mode == "max" else 1e12


class TrialRunner(tune.Trainable):
    """One trial: a deployment measured over the concurrency ladder, lowest load first.

    The first ``step`` only reports where the trial was placed (``placed``, with
    ``node_id`` and ``node_ip``), so the driver knows the node before any server exists.
    Each later ``step`` measures one rung of the :class:`~tuner.objective.Ladder` (one
    concurrency level, every scenario still climbing; the first also deploys), so a
    scheduler can stop a trial between them. Results carry ``levels`` (LevelMetrics dicts by
    scenario) with their ``violations`` (text by scenario, empty when the level meets the
    SLO), ``score`` (None until the trial has one), ``objective`` (score or sentinel),
    ``slo_excess`` (see :func:`~tuner.objective.slo_excess`), ``latency`` (multi-objective
    studies), ``rung_value`` and ``rung_excess`` (the score metric and SLO excess at this
    level, met or not: what early stopping reads), ``ladder_done`` (nothing left to measure),
    and, on failure, ``failed``, ``reason`` and ``message``.
    """

    def setup(self, config: dict[str, Any], backend: Backend | None = None) -> None:
        assert backend is not None, "wrap with tune.with_parameters(TrialRunner, backend=...)"
        self._backend = backend
        self._node = {"node_id": current_node(), "node_ip": ray.util.get_node_ip_address()}
        self._start(config)

    def _start(self, config: dict[str, Any]) -> None:
        spec = self._backend.spec
        self._params = dict(config)
        self._gpus = spec.gpus_needed(spec.server_config(self._params))
        self._ladder = objective.Ladder(spec.workload, spec.objective, self._gpus)
        self._failure: dict[str, Any] | None = None
        self._deployment: Deployment | None = None
        self._placed = False
        self._deployed = False
        self._warmed = False
        self._started_at = time.time()
        self._deploy_s = 0.0

    def _deploy(self) -> None:
        """Start this trial's server and wait until it is ready (or record why not)."""
        spec = self._backend.spec
        self._deployed = True
        self._started_at = time.time()  # the GPUs are held from here
        started = time.monotonic()
        try:
            self._deployment = self._backend.deploy(
                spec.server_config(self._params), trial_id=self.trial_id
            )
            self._backend.wait_ready(self._deployment, spec.backend.startup_timeout_s)
        except BackendError as e:
            self._failure = {"reason": TrialReason(e.reason), "message": str(e)}
        self._deploy_s = time.monotonic() - started

    def step(self) -> dict[str, Any]:
        # A failing trial is data: only the loss of this actor or its node reaches Tune as an
        # error (and is retried, see search.node_loss_retries); a bug here is not retried.
        try:
            return self._step()
        except Exception as e:
            logger.exception("trial %s failed", self.trial_id)
            return {
                **self._node,
                "gpus": self._gpus,
                "deploy_s": self._deploy_s,
                "started_at": self._started_at,
                OBJECTIVE_KEY: sentinel(objective.direction(self._backend.spec.objective)),
                "failed": True,
                "reason": TrialReason.ERROR,
                "message": f"{type(e).__name__}: {e}"[:1000],
                "done": True,
            }

    def _step(self) -> dict[str, Any]:
        if not self._placed:
            self._placed = True
            return {**self._node, "gpus": self._gpus, "placed": True, OBJECTIVE_KEY: sentinel(
                objective.direction(self._backend.spec.objective))}
        if not self._deployed:
            self._deploy()
        spec = self._backend.spec
        mode = objective.direction(spec.objective)
        base = {
            **self._node,
            "gpus": self._gpus,
            "deploy_s": self._deploy_s,
            "started_at": self._started_at,
            OBJECTIVE_KEY: sentinel(mode),
        }
        if self._failure is not None:
            return {**base, "failed": True, **self._failure, "done": True}
        assert self._deployment is not None
        rung = self._ladder.next_rung()
        if not self._warmed:
            self._warmed = True
            failure, done = self._warm_up(rung)
            if done is not None:
                base["warmup"] = done.event()
            if failure:
                return {**base, "failed": True, **failure, "done": True}
        started = time.monotonic()  # the levels' time: the warm-up's is its own
        measured: list[LevelMetrics] = []
        for scenario, concurrency in rung:
            failure = self._measure(scenario, concurrency, measured)
            if failure is not None:
                return {
                    **base,
                    **self._levels(measured),
                    "failed": True,
                    **failure,
                    "bench_s": time.monotonic() - started,
                    "done": True,
                }
        self._ladder.record(measured)
        score = self._ladder.score
        verdict = {}
        if self._ladder.done and score is None:
            verdict = {"reason": TrialReason.SLO_VIOLATED, "message": self._ladder.missed()}
        return {
            **base,
            **self._levels(measured),
            **verdict,
            "score": score,
            OBJECTIVE_KEY: score if score is not None else sentinel(mode),
            "slo_excess": self._ladder.slo_excess,
            "latency": self._ladder.latency,
            "rung_value": self._ladder.rung_value,
            "rung_excess": self._ladder.rung_excess,
            "bench_s": time.monotonic() - started,
            "ladder_done": self._ladder.done,
            "done": self._ladder.done,
        }

    def _warm_up(
        self, rung: list[tuple[str, int]]
    ) -> tuple[dict[str, Any] | None, warmup.WarmUp | None]:
        """One unmeasured wave before the first level (``workload.warmup_requests``): the
        failure fields if the server died during it, and what the wave did (None: none was
        sent). Its errors are not the trial's: the level that follows meets a broken server
        for itself."""
        workload = self._backend.spec.workload
        count = workload.warmup_requests
        if count is None:
            count = min(rung[0][1], warmup.MAX_CONNECTIONS) if rung else 0
        if not count:
            return None, None
        deployment = self._deployment
        assert deployment is not None
        scenarios = [scenario for scenario, _ in rung]
        dataset = dataset_lengths(self._backend.spec)[0] if "dataset" in scenarios else None
        done = self._backend.warm_up(
            deployment,
            warmup.prompt_lengths(scenarios, count, dataset=dataset),
            timeout_s=workload.max_seconds_per_level,
        )
        # Requests cut off are what a dying server looks like: give it a moment to exit, so
        # the trial says why (exit status, log) rather than that /health went quiet.
        deadline = time.monotonic() + (_EXIT_GRACE_S if done and done.unanswered else 0.0)
        while True:
            if dead := self._backend.exited(deployment):
                message = f"{dead} (during the warm-up)"
                return {"reason": TrialReason.CRASHED, "message": message}, done
            if time.monotonic() >= deadline:
                return None, done
            time.sleep(0.2)

    def _measure(
        self, scenario: str, concurrency: int, measured: list[LevelMetrics]
    ) -> dict[str, Any] | None:
        """Measure one level into ``measured``; the failure fields when it could not.

        The server is watched while the level runs: if it dies, the level is cut short and
        the trial fails as ``crashed``; what was measured against a dying server is
        discarded, since it says nothing about the config.
        """
        deployment = self._deployment
        assert deployment is not None
        if dead := self._backend.alive(deployment):
            return {"reason": TrialReason.CRASHED, "message": dead}
        out_dir = self._backend.workdir / "trials" / self.trial_id / f"{scenario}-c{concurrency}"
        try:
            level = self._backend.measure(
                deployment,
                scenario=scenario,
                concurrency=concurrency,
                out_dir=out_dir,
                abort=lambda: self._backend.exited(deployment),
            )
        except ServerExitedError as e:
            return {"reason": TrialReason.CRASHED, "message": str(e)}
        except BenchmarkError as e:
            if dead := self._backend.alive(deployment):
                return {"reason": TrialReason.CRASHED, "message": f"{dead} (during the level)"}
            return {"reason": TrialReason.BENCHMARK, "message": str(e)}
        # A death right at the end of the level is not seen by the watch: look once more.
        if dead := self._backend.exited(deployment):
            return {
                "reason": TrialReason.CRASHED,
                "message": f"{dead} (during level c={concurrency})",
            }
        measured.append(level)
        return None

    def _levels(self, levels: list[LevelMetrics]) -> dict[str, Any]:
        # Keyed by scenario (one level each per rung), not listed: Tune flattens dicts into
        # plain columns, while lists of dicts upset its TensorBoard logger.
        spec = self._backend.spec
        return {
            "levels": {level.scenario: level.model_dump() for level in levels},
            "violations": {
                level.scenario: "; ".join(objective.violations(level, spec.objective))
                for level in levels
            },
        }

    def _stop_server(self) -> None:
        if self._deployment is not None:
            self._backend.teardown(self._deployment.name)
            self._deployment = None

    def cleanup(self) -> None:
        self._stop_server()

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        # Actor reuse: the old trial's server goes; the new trial deploys in its first step.
        self._stop_server()
        self._start(new_config)
        return True

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        # A trial restarts from scratch after a driver crash: a server cannot be checkpointed.
        return None

    def load_checkpoint(self, checkpoint: Any) -> None:
        return None
