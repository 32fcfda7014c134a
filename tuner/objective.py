"""Scoring: the levels a trial measures, which meet the SLO, and the trial's score over them.

Every figure is read through :func:`scored`, which applies ``objective.source``: the server's
own view of a level where it has one (the default), genai-bench's, or genai-bench's with
levels it disagrees with failing the SLO.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from tuner.bench.metrics import LATENCY_METRICS, THROUGHPUT_METRICS, LevelMetrics
from tuner.prices import usd_per_mtok
from tuner.spec import COST_METRIC, ObjectiveSpec, WorkloadSpec

__all__ = [
    "METRICS",
    "Ladder",
    "best_level",
    "direction",
    "meets_slo",
    "metric_name",
    "operating_points",
    "pareto_front",
    "score",
    "score_label",
    "scored",
    "slo_excess",
    "tradeoff_latency",
    "violations",
]

METRICS = (*THROUGHPUT_METRICS, *LATENCY_METRICS, "error_rate")
_GOODPUT_METRIC = {
    "output": "output_throughput",
    "total": "total_throughput",
    "requests": "requests_per_second",
}


def metric_name(objective: ObjectiveSpec) -> str:
    """The level metric the score is taken from (the goodput for ``cost_per_mtok``)."""
    if objective.metric in ("goodput", COST_METRIC):
        return _GOODPUT_METRIC[objective.throughput]
    return objective.metric


def score_label(objective: ObjectiveSpec) -> str:
    """What the score is, for titles and headers: ``goodput per GPU``,
    ``cost_per_mtok (USD)``, ``ttft_p99_ms``, ..."""
    if objective.metric == COST_METRIC:
        return f"{COST_METRIC} (USD)"
    return objective.metric + (" per GPU" if objective.per_gpu else "")


def direction(objective: ObjectiveSpec) -> str:
    """The score's: ``max`` or ``min``."""
    if objective.direction:
        return objective.direction
    lower_better = (*LATENCY_METRICS, "error_rate", COST_METRIC)
    return "min" if objective.metric in lower_better or metric_name(objective) in lower_better \
        else "max"


def _pick(objective: ObjectiveSpec) -> Callable[..., Any]:
    """``max`` or ``min``: how the best level of a scenario is chosen by :func:`metric_name`
    (the highest goodput also gives the lowest cost per token)."""
    if objective.metric == COST_METRIC:
        return max
    return max if direction(objective) == "max" else min


def _as_score(value: float, objective: ObjectiveSpec, gpus: int) -> float:
    """A value of :func:`metric_name` (a mean over scenarios) in the score's unit: per GPU,
    or the GPUs' price per million output tokens at that goodput."""
    if objective.metric == COST_METRIC:
        assert objective.usd_per_gpu_hour is not None  # the study spec fills it in
        usd_per_hour = objective.usd_per_gpu_hour * max(gpus, 1)
        return usd_per_mtok(usd_per_hour, value) if value > 0 else math.inf
    return value / gpus if objective.per_gpu else value


def scored(level: LevelMetrics, objective: ObjectiveSpec) -> LevelMetrics:
    """The level as the score and the SLO see it under ``objective.source``: with the
    server's figures in place of genai-bench's for ``server``, else as measured.
    Idempotent, so a view may be scored again."""
    return level.as_server_sees() if objective.source == "server" else level


def violations(level: LevelMetrics, objective: ObjectiveSpec) -> list[str]:
    """The SLO bounds a level breaks, as ``metric value > bound`` texts; under the
    ``strict`` source also a client-bound or host-overloaded measurement."""
    view = scored(level, objective)
    broken = []
    for name, bound in objective.slo.bounds().items():
        value = getattr(view, name)
        if value > bound:
            broken.append(f"{name} {value:.4g} > {bound:g}")
    if objective.source == "strict":
        if level.client_bound:
            broken.append(f"client_bound: {level.client_bound}")
        if level.host_overloaded:
            broken.append(f"host_overloaded: {level.host_overloaded}")
    return broken


def meets_slo(level: LevelMetrics, objective: ObjectiveSpec) -> bool:
    """Whether a level meets every bound."""
    return not violations(level, objective)


def score(
    levels: Sequence[LevelMetrics],
    objective: ObjectiveSpec,
    gpus: int,
    workload: WorkloadSpec | None = None,
) -> float | None:
    """The trial's score: per scenario, the best metric value over levels meeting the SLO;
    then the mean over scenarios, weighted by their shares of traffic (``workload.weights``;
    equal without a workload or weights). None when some scenario has no such level."""
    name, best = metric_name(objective), _pick(objective)
    per_scenario: dict[str, list[float]] = {}
    for level in (scored(level, objective) for level in levels):
        per_scenario.setdefault(level.scenario, [])
        if meets_slo(level, objective):
            per_scenario[level.scenario].append(getattr(level, name))
    if not per_scenario or any(not values for values in per_scenario.values()):
        return None
    value = _weighted_mean(
        {scenario: best(values) for scenario, values in per_scenario.items()}, workload
    )
    return _as_score(value, objective, gpus)


def _weighted_mean(by_scenario: dict[str, float], workload: WorkloadSpec | None) -> float:
    """The mean of per-scenario values, each counted by its share of the traffic."""
    shares = {s: workload.weight(s) if workload else 1.0 for s in by_scenario}
    return sum(v * shares[s] for s, v in by_scenario.items()) / sum(shares.values())


def best_level(levels: Sequence[LevelMetrics], objective: ObjectiveSpec) -> LevelMetrics | None:
    """The level that gave the score, as :func:`scored` sees it: the best one meeting the
    SLO."""
    feasible = [scored(level, objective) for level in levels if meets_slo(level, objective)]
    if not feasible:
        return None
    name = metric_name(objective)
    pick = _pick(objective)
    return pick(feasible, key=lambda level: float(getattr(level, name)))


# The SLO excess of a level that meets every bound but failed for its measurement: just
# infeasible, so the search learns to avoid it without a made-up distance.
_FLAGGED_EXCESS = 1e-3


def _excess(value: float, bound: float) -> float:
    # Relative, so bounds of different units add up; a zero bound (no errors allowed) counts
    # the raw value.
    return (value - bound) / bound if bound > 0 else value


def _by_scenario(
    levels: Sequence[LevelMetrics], objective: ObjectiveSpec
) -> dict[str, list[LevelMetrics]]:
    """The scored levels by scenario."""
    groups: dict[str, list[LevelMetrics]] = {}
    for level in levels:
        groups.setdefault(level.scenario, []).append(scored(level, objective))
    return groups


def slo_excess(levels: Sequence[LevelMetrics], objective: ObjectiveSpec) -> float | None:
    """How far the trial is from meeting the SLO: the largest ``(value - bound) / bound`` over
    the bounds, at the level that decides each scenario (the scoring level when one meets the
    SLO, else the one closest to it), worst scenario counted. At most 0 when the trial has a
    score; None before any level is measured. The Bayesian search learns feasibility from it.
    """
    bounds = objective.slo.bounds()
    worst: float | None = None
    name = metric_name(objective)
    pick = _pick(objective)
    for group in _by_scenario(levels, objective).values():
        feasible = [level for level in group if meets_slo(level, objective)]
        if feasible:
            deciding = pick(feasible, key=lambda level: float(getattr(level, name)))
        else:
            deciding = min(group, key=lambda level: _level_excess(level, bounds))
        excess = _level_excess(deciding, bounds)
        if not feasible:  # within every bound yet failed: a flagged level under ``strict``
            excess = max(excess, _FLAGGED_EXCESS)
        worst = excess if worst is None else max(worst, excess)
    return worst


def _level_excess(level: LevelMetrics, bounds: dict[str, float]) -> float:
    return max(_excess(getattr(level, metric), bound) for metric, bound in bounds.items())


def tradeoff_latency(levels: Sequence[LevelMetrics], objective: ObjectiveSpec) -> float | None:
    """The ``objective.pareto`` latency at the scoring level (the worst over scenarios), or
    None when the study has one objective or the trial no score."""
    if objective.pareto is None:
        return None
    name = metric_name(objective)
    pick = _pick(objective)
    worst: float | None = None
    for group in _by_scenario(levels, objective).values():
        feasible = [level for level in group if meets_slo(level, objective)]
        if not feasible:
            return None
        deciding = pick(feasible, key=lambda level: float(getattr(level, name)))
        latency = float(getattr(deciding, objective.pareto))
        worst = latency if worst is None else max(worst, latency)
    return worst


def operating_points(
    levels: Sequence[LevelMetrics],
    objective: ObjectiveSpec,
    gpus: int,
    workload: WorkloadSpec | None = None,
) -> list[dict[str, float]]:
    """A trial's operating points: per concurrency level where every scenario meets the SLO,
    the score metric (mean over scenarios weighted as in :func:`score`, per GPU if the
    objective says so) and the
    ``objective.pareto`` latency (worst over scenarios). Empty for a single-objective study."""
    latency = objective.pareto
    if latency is None:
        return []
    name = metric_name(objective)
    scenarios = {level.scenario for level in levels}
    by_load: dict[int, list[LevelMetrics]] = {}
    for level in levels:
        by_load.setdefault(level.concurrency, []).append(scored(level, objective))
    points = []
    for concurrency, group in sorted(by_load.items()):
        if {level.scenario for level in group} != scenarios:
            continue
        if not all(meets_slo(level, objective) for level in group):
            continue
        value = _weighted_mean(
            {level.scenario: float(getattr(level, name)) for level in group}, workload
        )
        points.append(
            {
                "concurrency": concurrency,
                "score": _as_score(value, objective, gpus),
                "latency": max(float(getattr(level, latency)) for level in group),
            }
        )
    return points


def pareto_front(
    points: Sequence[dict[str, Any]], objective: ObjectiveSpec
) -> list[dict[str, Any]]:
    """The points no other point beats on both ``score`` (in the objective's direction) and
    ``latency`` (lower is better), by ascending latency."""
    sign = 1.0 if direction(objective) == "max" else -1.0

    def dominated(p: dict[str, Any]) -> bool:
        return any(
            sign * q["score"] >= sign * p["score"]
            and q["latency"] <= p["latency"]
            and (sign * q["score"] > sign * p["score"] or q["latency"] < p["latency"])
            for q in points
        )

    return sorted((p for p in points if not dominated(p)), key=lambda p: p["latency"])


class Ladder:
    """The levels one trial measures, a rung at a time, and what they add up to.

    A rung is one concurrency level across the scenarios still climbing, lowest load first. A
    scenario stops climbing at its first level that breaks the SLO (more load only makes
    latency worse); the whole trial stops when a scenario breaks it at the lowest level, since
    its score could then only be None. The trial runner, the pre-screen and the search
    benchmark all measure through this class, so they score alike.
    """

    def __init__(self, workload: WorkloadSpec, objective: ObjectiveSpec, gpus: int) -> None:
        self._objective = objective
        self._gpus = gpus
        self._workload = workload
        self._loads = list(workload.concurrency)
        self._climbing = list(workload.scenarios)
        self.rung = 0
        self.levels: list[LevelMetrics] = []

    @property
    def done(self) -> bool:
        """Whether nothing is left to measure."""
        return not self._climbing or self.rung >= len(self._loads)

    def next_rung(self) -> list[tuple[str, int]]:
        """The (scenario, concurrency) pairs of the next rung; empty when done."""
        if self.done:
            return []
        return [(scenario, self._loads[self.rung]) for scenario in self._climbing]

    def record(self, levels: Sequence[LevelMetrics]) -> None:
        """Add the levels measured for the next rung and move up."""
        self.levels.extend(levels)
        for level in levels:
            if not meets_slo(level, self._objective):
                self._climbing.remove(level.scenario)
                if self.rung == 0:
                    self._climbing = []
        self.rung += 1

    def _last_rung(self) -> list[LevelMetrics]:
        if not self.rung:
            return []
        load = self._loads[self.rung - 1]
        return [scored(level, self._objective) for level in self.levels
                if level.concurrency == load]

    @property
    def rung_value(self) -> float | None:
        """The score metric at the last rung measured, whether or not it met the SLO (mean
        over its scenarios weighted as the score is, per GPU if the objective says so); None
        before any rung."""
        last = self._last_rung()
        if not last:
            return None
        name = metric_name(self._objective)
        value = _weighted_mean(
            {level.scenario: float(getattr(level, name)) for level in last}, self._workload
        )
        return _as_score(value, self._objective, self._gpus)

    @property
    def rung_excess(self) -> float | None:
        """The SLO excess at the last rung measured (worst scenario); None before any rung."""
        last = self._last_rung()
        if not last:
            return None
        bounds = self._objective.slo.bounds()
        return max(_level_excess(level, bounds) for level in last)

    @property
    def score(self) -> float | None:
        """The score so far (see :func:`score`)."""
        return score(self.levels, self._objective, self._gpus, self._workload)

    @property
    def slo_excess(self) -> float | None:
        """See :func:`slo_excess`."""
        return slo_excess(self.levels, self._objective)

    def missed(self) -> str:
        """Why no level met the SLO, level by level (for a trial that ends without a score)."""
        parts = [
            f"{level.scenario} c={level.concurrency}: {'; '.join(broken)}"
            for level in self.levels
            if (broken := violations(level, self._objective))
        ]
        return "no level met the SLO: " + (" | ".join(parts) or "no level was measured")

    @property
    def latency(self) -> float | None:
        """See :func:`tradeoff_latency`."""
        return tradeoff_latency(self.levels, self._objective)
