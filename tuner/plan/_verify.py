"""``--verify``: measure the plan's best layouts on a backend and set the measurements beside
the predictions.

A layout is ``replicas`` identical servers sharing the load evenly, so one replica at its
share says how all of them do: each layout becomes a one-trial study of one replica under a
closed loop of as many users as it holds requests at the target load (Little's law at a
request rate), recorded in the store like any study. At a request rate its users start at
that rate (genai-bench's --spawn-rate: locust starts floor(rate) of them at a time, once a
second), not all together, which would keep them in one wave of simultaneous prefills. The
prediction beside it is the estimator's for that same closed loop, started the same way, so
both sides see the same arrivals.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from tuner import objective
from tuner.plan._estimate import estimate_replica, judge
from tuner.plan._result import Candidate, PlanResult
from tuner.plan._spec import PlanSpec
from tuner.spec import StudySpec, spec_from_dict
from tuner.store import Store, TrialState

__all__ = ["Verified", "unmeasurable", "verification_spec", "verify"]

# What is compared: latencies (ms, worst over the scenarios) and the layout's goodput.
COMPARED = ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "e2e_p99_ms", "goodput")


@dataclasses.dataclass(frozen=True)
class Verified:
    """One layout of the short list, predicted and measured under the same load.

    ``planned`` are the plan's figures at the target load; ``predicted`` the estimator's for
    the load measured (a closed loop of ``users`` per replica: genai-bench has no open-loop
    request rate, and under a closed loop TTFT queues differently); ``measured`` None when
    the layout was not measured, ``reason`` then says why (its trial failed, or the backend
    runs another GPU type), else why the measurement misses the SLO, or None when it meets it.
    """

    rank: int
    candidate: Candidate
    users: int
    planned: dict[str, float]
    predicted: dict[str, float]
    measured: dict[str, float] | None
    study_id: str | None
    reason: str | None = None

    @property
    def meets_slo(self) -> bool | None:
        """Whether the measurement met the plan's SLO; None when not measured."""
        return None if self.measured is None else self.reason is None

    def error(self, name: str) -> float | None:
        """``(predicted - measured) / measured`` of one compared metric, or None."""
        if self.measured is None:
            return None
        measured, predicted = self.measured.get(name), self.predicted.get(name)
        if not measured or predicted is None or not math.isfinite(predicted):
            return None
        return (predicted - measured) / measured

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for ``--json`` and the API."""
        return {
            "rank": self.rank,
            "layout": self.candidate.to_dict(),
            "users_per_replica": self.users,
            "planned": self.planned,
            "predicted": self.predicted,
            "measured": self.measured,
            "error": {name: self.error(name) for name in COMPARED},
            "meets_slo": self.meets_slo,
            "study_id": self.study_id,
            "reason": self.reason,
        }


def verification_spec(plan: PlanSpec, candidate: Candidate, rank: int) -> StudySpec:
    """The study that measures one replica of ``candidate`` at its share of the load."""
    users = _users(candidate)
    backend = plan.verify.backend.model_dump(mode="json")
    if backend["kind"] in ("twin", "estimate"):
        backend["gpu"] = candidate.gpu
    if "gpus" in backend:
        backend["gpus"] = candidate.tp
    slug = re.sub(r"[^a-z0-9]+", "-", candidate.gpu.lower()).strip("-")
    predicted = ", ".join(f"{name} {candidate.metrics[name]:,.1f}"
                          for name in COMPARED if name in candidate.metrics)
    return spec_from_dict({
        "name": f"plan-verify-{rank}-{slug}-tp{candidate.tp}x{candidate.replicas}",
        "description": f"Plan layout #{rank}: {candidate.replicas} x tp{candidate.tp} on "
        f"{candidate.gpu}, one replica at {users} users. Planned: {predicted}.",
        "model": plan.model.model_dump(mode="json", exclude_none=True),
        "backend": backend,
        "space": {"tp_size": [candidate.tp]},
        "fixed": {**plan.fixed,
                  **{k: v for k, v in candidate.server_args.items() if k != "tp_size"}},
        "workload": {
            "scenarios": list(plan.workload.scenarios),
            "concurrency": [users],
            "spawn_rate": _spawn_rate(plan, candidate),
            "max_requests_per_level": plan.verify.max_requests_per_level,
        },
        "objective": {"slo": plan.slo.model_dump(mode="json", exclude_none=True)},
        "search": {"algorithm": "grid", "prescreen": None, "early_stopping": False,
                   "confirm": {"top_k": 0}},
    }, source=f"the verification study of layout #{rank}")


def verify(result: PlanResult, n: int, *, store: Store,
           run: Callable[..., Any] | None = None) -> list[Verified]:
    """Measure the ``n`` best layouts of ``result``, one study each, in rank order.

    Args:
        result: a plan with ranked layouts.
        n: how many of the best to measure.
        store: where the verification studies are recorded.
        run: the study runner (default :func:`tuner.run_study`).

    Returns:
        One :class:`Verified` per layout, best first.
    """
    if run is None:
        from tuner.study import run_study

        run = run_study
    plan, out = result.spec, []
    for rank, candidate in enumerate(result.ranked[:n], 1):
        users = _users(candidate)
        planned = {name: candidate.metrics[name] for name in COMPARED}
        predicted = _predicted(plan, candidate, users)
        if (why := unmeasurable(plan, candidate)) is not None:
            out.append(Verified(rank, candidate, users, planned, predicted, None, None, why))
            continue
        spec = verification_spec(plan, candidate, rank)
        study = run(spec, store=store)
        trials = [t for t in study.trials if t.state == TrialState.COMPLETED and t.levels]
        if not trials:
            failed = next((t.reason for t in study.trials if t.reason), None)
            out.append(Verified(rank, candidate, users, planned, predicted, None,
                                study.study.study_id,
                                f"trial failed: {failed or study.study.state.value}"))
            continue
        measured = _measured(spec, trials[0].levels, candidate.replicas)
        _margin, missed = judge(plan, measured)
        out.append(Verified(rank, candidate, users, planned, predicted, measured,
                            study.study.study_id, missed))
    return out


def unmeasurable(plan: PlanSpec, candidate: Candidate) -> str | None:
    """Why ``plan.verify.backend`` cannot measure ``candidate`` (it runs another GPU type), or
    None when it can."""
    if plan.verify.backend.kind in ("twin", "estimate") or candidate.gpu == plan.verify.gpu:
        return None
    return (f"not measured: backend {plan.verify.backend.kind} runs {plan.verify.gpu}, "
            f"this layout {candidate.gpu}")


def _users(candidate: Candidate) -> int:
    return max(1, int(candidate.metrics.get("users_per_replica", 1)))


def _spawn_rate(plan: PlanSpec, candidate: Candidate) -> int | None:
    """Users started per second: a replica's share of the request rate, or the plan's own."""
    rate = plan.workload.request_rate
    if rate is None:
        return plan.workload.spawn_rate
    return max(1, round(rate / candidate.replicas))


def _predicted(plan: PlanSpec, candidate: Candidate, users: int) -> dict[str, float]:
    """The estimator's figures for the measured load: ``users`` per replica, closed loop."""
    closed = plan.workload.model_copy(update={
        "users": users * candidate.replicas, "request_rate": None,
        "spawn_rate": _spawn_rate(plan, candidate)})
    metrics, _margin, _reason = estimate_replica(
        plan.model_copy(update={"workload": closed}), candidate.gpu, candidate.server_args,
        candidate.replicas)
    return {name: metrics[name] for name in COMPARED}


def _measured(spec: StudySpec, levels: list[Any], replicas: int) -> dict[str, float]:
    """The worst latencies over the scenarios and the layout's goodput (one replica's output
    throughput, the lowest over the scenarios, times the replicas)."""
    seen = [objective.scored(level, spec.objective) for level in levels]
    names = {*COMPARED, *spec.objective.slo.bounds()} - {"goodput"}
    out = {name: max(float(getattr(level, name)) for level in seen) for name in names}
    out["goodput"] = min(level.output_throughput for level in seen) * replicas
    return out
