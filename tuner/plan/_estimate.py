"""One layout's estimate: a replica's share of the load through the twin, judged by the SLO."""

from __future__ import annotations

import math
from typing import Any

import twin
from tuner.plan._spec import PlanSpec

__all__ = ["Judged", "estimate_replica", "fit_problem", "judge"]

# SLO metric prefix -> the twin's stats key.
_STATS = {"ttft": "ttft", "tpot": "tpot", "e2e": "e2e_latency"}
# The latencies every candidate reports, besides its SLO's.
_REPORTED = ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "e2e_p99_ms")

# (metrics, margin, reason): reason is None when every bound is met.
Judged = tuple[dict[str, float], float, str | None]


def fit_problem(spec: PlanSpec, gpu: str, server_args: dict[str, Any]) -> str | None:
    """Why one replica with ``server_args`` would not start on ``tp_size`` GPUs of ``gpu``,
    as the twin's start-up checks say (``None`` when it starts)."""
    args = {"model_path": spec.model.model_path, **spec.fixed, **server_args}
    try:
        twin.resolve_server_args(args, gpu=gpu, num_gpus=8)
    except twin.StartupError as e:
        first = str(e).strip().splitlines()[0]
        return f"does not fit: {first[:160]}"
    except ValueError as e:
        return f"invalid flags: {e}"
    return None


def estimate_replica(
    spec: PlanSpec, gpu: str, server_args: dict[str, Any], replicas: int
) -> Judged:
    """Estimates one of ``replicas`` identical replicas under its share of the target load,
    for every scenario, and judges the worst against the SLO.

    Returns:
        ``(metrics, margin, reason)``: the worst latencies over the scenarios (ms), the
        error rate and the layout's ``goodput`` (output tokens/s of all replicas); the SLO
        margin (the smallest ``(bound - value) / bound``, negative when missed); and why it
        misses, or ``None``.
    """
    load = spec.workload
    args = {"model_path": spec.model.model_path, **spec.fixed, **server_args}
    worst: dict[str, float] = {}
    goodput = math.inf
    for scenario in load.scenarios:
        if load.request_rate is not None:
            mode: dict[str, Any] = {"request_rate": load.request_rate / replicas}
        else:
            assert load.users is not None
            mode = {"concurrency": max(1, math.ceil(load.users / replicas)),
                    "spawn_rate": load.spawn_rate}
        result = twin.estimate(
            args, gpu=gpu, scenario=scenario, max_requests=load.max_requests, num_gpus=8, **mode
        )
        agg = result["aggregated_metrics"]
        for name in {*_REPORTED, *spec.slo.bounds()}:
            value = _metric(agg, name)
            worst[name] = max(worst.get(name, value), value)
        goodput = min(goodput, _goodput(spec, agg, replicas))
        worst["users_per_replica"] = max(worst.get("users_per_replica", 1.0),
                                         _in_flight(mode, agg))
    worst["goodput"] = goodput
    return worst, *judge(spec, worst)


def _in_flight(mode: dict[str, Any], agg: dict[str, Any]) -> float:
    """Requests a replica holds at once: the users it serves, or at a request rate, the rate
    times the mean time a request takes (Little's law). A closed loop of that many users
    puts the same load on a replica (``--verify`` measures it so)."""
    if "concurrency" in mode:
        return float(mode["concurrency"])
    mean_s = agg["stats"]["e2e_latency"]["mean"]
    return float(math.ceil(mode["request_rate"] * mean_s)) if mean_s else 1.0


def _metric(agg: dict[str, Any], name: str) -> float:
    if name == "error_rate":
        return float(agg["error_rate"])
    stat, pct, _ms = name.split("_")
    value = agg["stats"][_STATS[stat]][pct]
    # No completed request has no latency: as bad as it gets.
    return math.inf if value is None else float(value) * 1000.0


def _goodput(spec: PlanSpec, agg: dict[str, Any], replicas: int) -> float:
    """Output tokens/s the layout serves: at a request rate, the offered rate times the
    tokens of a request (the estimate's own throughput also counts its drain at the end);
    with users, what the closed loop achieved."""
    out = float(agg["mean_output_throughput_tokens_per_s"])
    rate = spec.workload.request_rate
    if rate is None:
        return out * replicas
    per_request = out / float(agg["requests_per_second"]) if agg["requests_per_second"] else 0.0
    return rate * per_request


def judge(spec: PlanSpec, metrics: dict[str, float]) -> tuple[float, str | None]:
    """``(margin, reason)`` of ``metrics`` against the plan's SLO: the smallest
    ``(bound - value) / bound`` (negative when missed) and why it misses, or None."""
    margin, reason, worst = math.inf, None, math.inf
    for name, bound in spec.slo.bounds().items():
        value = metrics[name]
        share = (bound - value) / bound if bound else (0.0 if value <= 0 else -math.inf)
        margin = min(margin, share)
        if value > bound and share < worst:
            worst = share
            reason = (f"misses {name}: no request completed" if not math.isfinite(value)
                      else f"misses {name} by {_show(name, value - bound)} "
                      f"({_show(name, value)} > {_show(name, bound)})")
    return (margin if math.isfinite(margin) else -1.0), reason


def _show(name: str, value: float) -> str:
    if name == "error_rate":
        return f"{value:.1%}"
    if not math.isfinite(value):
        return "no completed request"
    return f"{value:,.0f} ms" if abs(value) >= 100 else f"{value:.1f} ms"
