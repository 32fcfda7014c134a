"""The throughput-vs-latency scatter: one point per measured level, Pareto front, SLO bound."""

from __future__ import annotations

from typing import Any

from tuner import objective
from tuner.bench.metrics import LATENCY_METRICS, THROUGHPUT_METRICS
from tuner.spec import StudySpec
from tuner.store import TrialRecord, TrialState

__all__ = ["Point", "chart_options", "latency_choices", "points", "study_front", "x_metric"]

Point = dict[str, Any]
_LABELS = {"output_throughput": "output tokens/s", "input_throughput": "input tokens/s",
           "total_throughput": "tokens/s", "requests_per_second": "requests/s"}


def x_metric(spec: StudySpec) -> str:
    """The throughput on the x axis: the one the objective counts, else output tokens/s."""
    name = objective.metric_name(spec.objective)
    return name if name in THROUGHPUT_METRICS else "output_throughput"


def latency_choices(spec: StudySpec) -> list[str]:
    """Latencies worth plotting: those the SLO bounds first, then the usual p99s."""
    bounded = [m for m in spec.objective.slo.bounds() if m in LATENCY_METRICS]
    return list(dict.fromkeys([*bounded, "ttft_p99_ms", "tpot_p99_ms", "e2e_p99_ms"]))


def points(spec: StudySpec, trials: list[TrialRecord], y: str) -> list[Point]:
    """One point per measured level: x throughput (per GPU when the objective is), y latency."""
    x = x_metric(spec)
    out = []
    for trial in trials:
        for level in trial.levels:
            metrics = objective.scored(level, spec.objective)
            value = getattr(metrics, x)
            if spec.objective.per_gpu:
                value /= max(trial.gpus, 1)
            out.append({"x": round(value, 3), "y": round(getattr(metrics, y), 3),
                        "trial": trial.number, "concurrency": metrics.concurrency,
                        "scenario": metrics.scenario,
                        "meets": objective.meets_slo(level, spec.objective)})
    return out


def study_front(spec: StudySpec, trials: list[TrialRecord], y: str) -> list[list[float]]:
    """The study's Pareto front in the chart's axes, as ``[x, y]`` by ascending ``x``.

    :func:`tuner.objective.pareto_front` over the operating points of the trials that did not
    fail (concurrency levels where every scenario meets the SLO), with ``y`` as the latency:
    exactly ``StudyResult.pareto`` when ``y`` is the objective's ``pareto`` latency. Empty
    when the objective's metric is not the throughput on the x axis.
    """
    if objective.metric_name(spec.objective) != x_metric(spec):
        return []
    tradeoff = spec.objective.model_copy(update={"pareto": y})
    operating = []
    for trial in trials:
        if trial.state == TrialState.FAILED:
            continue
        operating += objective.operating_points(trial.levels, tradeoff, trial.gpus,
                                                spec.workload)
    front = objective.pareto_front(operating, tradeoff)
    return sorted([round(p["score"], 3), round(p["latency"], 3)] for p in front)


def chart_options(spec: StudySpec, trials: list[TrialRecord], y: str) -> dict[str, Any]:
    """ECharts options for ``ui.echart``."""
    pts = points(spec, trials, y)
    x = x_metric(spec)
    x_name = _LABELS.get(x, x) + (" per GPU" if spec.objective.per_gpu else "")

    def data(selected: list[Point]) -> list[list[Any]]:
        return [[p["x"], p["y"], p["trial"], p["concurrency"], p["scenario"]] for p in selected]

    bound = spec.objective.slo.bounds().get(y)
    slo_series: dict[str, Any] = {
        "name": "meets SLO", "type": "scatter", "symbolSize": 11,
        "itemStyle": {"color": "#2e7d32"}, "data": data([p for p in pts if p["meets"]])}
    if bound is not None:
        slo_series["markLine"] = {
            "silent": True, "symbol": "none",
            "lineStyle": {"type": "dashed", "color": "#c62828"},
            "label": {"formatter": f"SLO {y} ≤ {bound:g}", "position": "insideEndTop"},
            "data": [{"yAxis": bound}]}
    # keep the SLO line in view: ECharts scales the axis to the data only
    top = {"max": round(max([p["y"] for p in pts] + [bound]) * 1.1, 1)} if bound else {}
    return {
        "animation": False,
        "grid": {"left": 70, "right": 30, "top": 40, "bottom": 55},
        "legend": {"top": 0},
        "tooltip": {"trigger": "item", ":formatter": (
            "p => p.seriesName === 'Pareto front' ? `Pareto: ${p.value[0]}, ${p.value[1]} ms`"
            " : `trial ${p.value[2]} · c=${p.value[3]} · ${p.value[4]}<br>"
            f"{x_name}: ${{p.value[0]}}<br>{y}: ${{p.value[1]}}`")},
        "xAxis": {"type": "value", "name": x_name, "nameLocation": "middle", "nameGap": 30,
                  "scale": True},
        "yAxis": {"type": "value", "name": y, "nameLocation": "middle", "nameGap": 50,
                  "scale": True, **top},
        "series": [
            slo_series,
            {"name": "misses SLO", "type": "scatter", "symbolSize": 9,
             "itemStyle": {"color": "#9e9e9e"}, "data": data([p for p in pts if not p["meets"]])},
            {"name": "Pareto front", "type": "line", "step": "end", "symbol": "none",
             "lineStyle": {"color": "#1565c0", "width": 2},
             "data": study_front(spec, trials, y)},
        ],
    }
