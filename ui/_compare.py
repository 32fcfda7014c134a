"""Charts of the study page beside the main scatter: trials compared level by level, and the
importance of each searched flag."""

from __future__ import annotations

from typing import Any

from tuner import objective
from tuner.spec import StudySpec
from tuner.store import TrialRecord

__all__ = ["compare_options", "compare_rows", "importance_options"]


def compare_options(spec: StudySpec, trials: list[TrialRecord], y: str) -> dict[str, Any]:
    """ECharts options: ``y`` against concurrency, one line per trial (and scenario, when the
    workload has several), with the SLO bound on ``y`` as a dashed line."""
    several = len(spec.workload.scenarios) > 1
    series = []
    for trial in trials:
        by_scenario: dict[str, list[list[float]]] = {}
        for level in trial.levels:
            view = objective.scored(level, spec.objective)
            by_scenario.setdefault(level.scenario, []).append(
                [level.concurrency, round(float(getattr(view, y)), 3)])
        for scenario, data in by_scenario.items():
            name = f"#{trial.number}" + (f" {scenario}" if several else "")
            series.append({"name": name, "type": "line", "symbolSize": 8,
                           "data": sorted(data)})
    bound = spec.objective.slo.bounds().get(y)
    if bound is not None and series:
        series[0]["markLine"] = {
            "silent": True, "symbol": "none",
            "lineStyle": {"type": "dashed", "color": "#c62828"},
            "label": {"formatter": f"SLO {y} ≤ {bound:g}", "position": "insideEndTop"},
            "data": [{"yAxis": bound}]}
    return {
        "animation": False,
        "grid": {"left": 70, "right": 30, "top": 40, "bottom": 55},
        "legend": {"top": 0},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "log", "logBase": 2, "name": "concurrency", "nameLocation": "middle",
                  "nameGap": 30},
        "yAxis": {"type": "value", "name": y, "nameLocation": "middle", "nameGap": 50,
                  "scale": True},
        "series": series,
    }


def compare_rows(spec: StudySpec, trials: list[TrialRecord]) -> tuple[list[dict[str, Any]],
                                                                        list[dict[str, Any]]]:
    """Columns and rows of the side-by-side table: a row per level, per trial its output
    tokens/s and TTFT/TPOT p99, and whether the level met the SLO."""
    columns = [{"name": "level", "label": "Level", "field": "level", "align": "left"}]
    columns += [{"name": t.trial_id, "label": f"#{t.number}", "field": t.trial_id,
                 "align": "right"} for t in trials]
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for trial in trials:
        for level in trial.levels:
            view = objective.scored(level, spec.objective)
            mark = "✓" if objective.meets_slo(level, spec.objective) else "✗"
            row = rows.setdefault((level.scenario, level.concurrency), {
                "level": f"{level.scenario} c={level.concurrency}"})
            row[trial.trial_id] = (f"{view.output_throughput:,.0f} tok/s · "
                                   f"{view.ttft_p99_ms:.0f} / {view.tpot_p99_ms:.1f} ms {mark}")
    return columns, [rows[key] for key in sorted(rows)]


def importance_options(importance: dict[str, float]) -> dict[str, Any]:
    """ECharts options: a horizontal bar per searched flag, most important on top."""
    names = list(importance)[::-1]
    return {
        "animation": False,
        "grid": {"left": 170, "right": 30, "top": 10, "bottom": 30},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "value", "max": 1},
        "yAxis": {"type": "category", "data": names},
        "series": [{"type": "bar", "itemStyle": {"color": "#1565c0"},
                    "data": [round(importance[n], 3) for n in names]}],
    }
