"""Parameter importance over a study's trials."""

from __future__ import annotations

from tuner.search import param_importance
from tuner.spec import spec_from_dict
from tuner.store import TrialRecord, TrialState

SPEC = spec_from_dict(
    {
        "name": "s",
        "model": {"name": "m"},
        "backend": {"kind": "estimate", "gpus": 2},
        "space": {
            "max_running_requests": [8, 16, 32, 64, 128, 256],
            "schedule_policy": ["fcfs", "lpm"],
            "chunked_prefill_size": [2048, 4096, 8192],
        },
    }
)


def test_the_flag_that_drives_the_score_ranks_first() -> None:
    trials = []
    for i in range(36):
        params = {
            "max_running_requests": [8, 16, 32, 64, 128, 256][i % 6],
            "schedule_policy": ["fcfs", "lpm"][i // 6 % 2],
            "chunked_prefill_size": [2048, 4096, 8192][i // 12],
        }
        trials.append(
            TrialRecord(
                study_id="s",
                trial_id=str(i),
                number=i + 1,
                params=params,
                gpus=1,
                state=TrialState.COMPLETED,
                score=params["max_running_requests"] * 10.0 + i % 5,
            )
        )
    importance = param_importance(SPEC, trials)
    assert list(importance)[0] == "max_running_requests"
    assert abs(sum(importance.values()) - 1) < 1e-6


def test_too_few_trials_give_no_importance() -> None:
    trial = TrialRecord(
        study_id="s",
        trial_id="a",
        number=1,
        gpus=1,
        score=1.0,
        state=TrialState.COMPLETED,
        params={
            "max_running_requests": 8,
            "schedule_policy": "fcfs",
            "chunked_prefill_size": 2048,
        },
    )
    assert param_importance(SPEC, [trial]) == {}
