"""The scatter's data: points per level, the Pareto front and the SLO line."""

from __future__ import annotations

from typing import Any

from tests.api.fakes import QUICK_SPEC, level
from tuner import StudyResult
from tuner.spec import spec_from_dict
from tuner.store import StudyRecord, StudyState, TrialRecord, TrialState
from ui import chart_options


def _trial(number: int, params: dict[str, Any], loads: tuple[int, ...] = (4, 16),
           state: TrialState = TrialState.COMPLETED) -> TrialRecord:
    return TrialRecord(study_id="s", trial_id=f"t{number}", number=number, params=params,
                       state=state, gpus=params["tp_size"],
                       levels=[level("D(256,128)", c, params) for c in loads])


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
    # the two undominated levels that meet the SLO: (168.75, 124) and (450, 256)
    assert front["data"] == [[168.75, 124.0], [450.0, 256.0]]


def test_the_chart_draws_the_studys_pareto_front() -> None:
    """Only operating points that meet the SLO count, as in ``StudyResult.pareto``: the
    fastest level here misses the SLO (TTFT 1488 ms > 400) and stays off the front, and so
    does a failed trial."""
    data = {**QUICK_SPEC, "objective": {**QUICK_SPEC["objective"], "pareto": "ttft_p99_ms"}}
    spec = spec_from_dict(data)
    trials = [_trial(1, {"tp_size": 1, "max_running_requests": 8}),
              _trial(2, {"tp_size": 2, "max_running_requests": 32}),
              _trial(3, {"tp_size": 1, "max_running_requests": 64}, loads=(64,)),
              _trial(4, {"tp_size": 2, "max_running_requests": 64}, loads=(4,),
                     state=TrialState.FAILED)]
    options = chart_options(spec, trials, "ttft_p99_ms")
    meets, misses, front = options["series"]
    fastest = max(misses["data"], key=lambda p: p[0])
    assert fastest[2] == 3 and fastest[0] > max(p[0] for p in meets["data"])
    study = StudyResult(study=StudyRecord(study_id="s", name="svc-test", spec=data,
                                          state=StudyState.COMPLETED, created_at=0.0),
                        trials=trials)
    assert front["data"] == [[round(p["score"], 3), round(p["latency"], 3)]
                             for p in study.pareto]
    assert front["data"] == [[168.75, 124.0], [450.0, 256.0]]


def test_the_front_weighs_scenarios_by_their_share_of_traffic() -> None:
    """With weighted scenarios the chart's front is the study's (weighted) one, not a plain
    mean over scenarios."""
    scenarios = [{"scenario": "D(256,128)", "weight": 9}, {"scenario": "D(64,32)", "weight": 1}]
    data = {**QUICK_SPEC, "workload": {**QUICK_SPEC["workload"], "scenarios": scenarios},
            "objective": {**QUICK_SPEC["objective"], "pareto": "ttft_p99_ms"}}
    spec = spec_from_dict(data)
    params = {"tp_size": 1, "max_running_requests": 8}
    trial = TrialRecord(study_id="s", trial_id="t1", number=1, params=params,
                        state=TrialState.COMPLETED, gpus=1,
                        levels=[level("D(256,128)", 4, params),
                                {**level("D(64,32)", 4, params), "output_throughput": 1000.0}])
    study = StudyResult(study=StudyRecord(study_id="s", name="svc-test", spec=data,
                                          state=StudyState.COMPLETED, created_at=0.0),
                        trials=[trial])
    front = chart_options(spec, [trial], "ttft_p99_ms")["series"][2]["data"]
    assert front == [[round(p["score"], 3), round(p["latency"], 3)] for p in study.pareto]
    heavy = level("D(256,128)", 4, params)["output_throughput"]
    assert front[0][0] == round((9 * heavy + 1000.0) / 10, 3) != round((heavy + 1000) / 2, 3)
