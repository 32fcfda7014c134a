"""The scatter's data: points per level, the Pareto front and the SLO line."""

from __future__ import annotations

from typing import Any

from tests.api.fakes import QUICK_SPEC, level
from tuner.spec import spec_from_dict
from tuner.store import TrialRecord, TrialState
from ui import chart_options, pareto_front


def test_pareto_front_keeps_the_undominated_points() -> None:
    pts = [{"x": x, "y": y} for x, y in [(1, 1), (2, 3), (3, 2), (4, 5), (2, 0.5), (4, 6)]]
    assert [(p["x"], p["y"]) for p in pareto_front(pts)] == [(2, 0.5), (3, 2), (4, 5)]
    assert pareto_front([]) == []


def _trial(number: int, params: dict[str, Any]) -> TrialRecord:
    return TrialRecord(study_id="s", trial_id=f"t{number}", number=number, params=params,
                       state=TrialState.COMPLETED, gpus=params["tp_size"],
                       levels=[level("D(256,128)", c, params) for c in (4, 16)])


def test_chart_options() -> None:
    spec = spec_from_dict(QUICK_SPEC)
    trials = [_trial(1, {"tp_size": 1, "max_running_requests": 8}),
              _trial(2, {"tp_size": 2, "max_running_requests": 32})]
    options = chart_options(spec, trials, "ttft_p99_ms")
    meets, misses, front = options["series"]
    assert len(meets["data"]) + len(misses["data"]) == 4
    assert all(p[1] <= 400 for p in meets["data"]) and all(p[1] > 400 for p in misses["data"])
    assert meets["markLine"]["data"] == [{"yAxis": 400}]
    assert options["yAxis"]["max"] >= 400  # the SLO line stays in view
    assert options["xAxis"]["name"] == "output tokens/s per GPU"
    # per GPU: trial 2 (tp 2) is plotted at half its server throughput
    raw = level("D(256,128)", 4, {"tp_size": 2, "max_running_requests": 32})
    assert [round(raw["output_throughput"] / 2, 3), round(raw["ttft_p99_ms"], 3), 2, 4,
            "D(256,128)"] in meets["data"] + misses["data"]
    assert front["data"]
