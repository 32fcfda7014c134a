"""Scoring: which levels meet the SLO, and the trial's score over them."""

from __future__ import annotations

from collections.abc import Sequence

from tuner.bench.metrics import LATENCY_METRICS, THROUGHPUT_METRICS, LevelMetrics
from tuner.spec import ObjectiveSpec

__all__ = ["METRICS", "best_level", "direction", "meets_slo", "metric_name", "score", "violations"]

METRICS = (*THROUGHPUT_METRICS, *LATENCY_METRICS, "error_rate")
_GOODPUT_METRIC = {
    "output": "output_throughput",
    "total": "total_throughput",
    "requests": "requests_per_second",
}


def metric_name(objective: ObjectiveSpec) -> str:
    """The level metric the score is taken from."""
    if objective.metric == "goodput":
        return _GOODPUT_METRIC[objective.throughput]
    return objective.metric


def direction(objective: ObjectiveSpec) -> str:
    """``max`` or ``min``."""
    if objective.direction:
        return objective.direction
    return "min" if metric_name(objective) in (*LATENCY_METRICS, "error_rate") else "max"


def violations(level: LevelMetrics, objective: ObjectiveSpec) -> list[str]:
    """The SLO bounds a level breaks, as ``metric value > bound`` texts."""
    broken = []
    for name, bound in objective.slo.bounds().items():
        value = getattr(level, name)
        if value > bound:
            broken.append(f"{name} {value:.4g} > {bound:g}")
    return broken


def meets_slo(level: LevelMetrics, objective: ObjectiveSpec) -> bool:
    """Whether a level meets every bound."""
    return not violations(level, objective)


def score(levels: Sequence[LevelMetrics], objective: ObjectiveSpec, gpus: int) -> float | None:
    """The trial's score: per scenario, the best metric value over levels meeting the SLO;
    then the mean over scenarios. None when some scenario has no such level."""
    name, best = metric_name(objective), max if direction(objective) == "max" else min
    per_scenario: dict[str, list[float]] = {}
    for level in levels:
        per_scenario.setdefault(level.scenario, [])
        if meets_slo(level, objective):
            per_scenario[level.scenario].append(getattr(level, name))
    if not per_scenario or any(not values for values in per_scenario.values()):
        return None
    value = sum(best(values) for values in per_scenario.values()) / len(per_scenario)
    return value / gpus if objective.per_gpu else value


def best_level(
    levels: Sequence[dict[str, object]], objective: ObjectiveSpec
) -> dict[str, object] | None:
    """The stored level (a LevelMetrics dict) that gave the score: the best one meeting the SLO."""
    feasible = [
        level for level in levels if meets_slo(LevelMetrics.model_validate(level), objective)
    ]
    if not feasible:
        return None
    name = metric_name(objective)
    pick = max if direction(objective) == "max" else min
    return pick(feasible, key=lambda level: float(level[name]))  # type: ignore[arg-type]
