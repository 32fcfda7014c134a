"""The confirmation verdict: a winner only beyond the noise, else a tie and the cheaper config."""

from __future__ import annotations

from typing import Any

from tuner.search import Estimate, judge, top_trials
from tuner.spec import spec_from_dict
from tuner.store import TrialRecord, TrialState

SPEC = spec_from_dict(
    {
        "name": "s",
        "model": {"name": "m"},
        "backend": {"kind": "estimate", "gpus": 4},
        "space": {"tp_size": [1, 2], "max_running_requests": [16, 64]},
        "objective": {"per_gpu": True, "slo": {"tpot_p99_ms": 50}},
        "search": {"confirm": {"top_k": 2, "repeats": 2}},
    }
)


def level(throughput: float) -> dict[str, Any]:
    return {
        "scenario": "D(1024,256)",
        "concurrency": 32,
        "num_requests": 100,
        "num_completed": 100,
        "num_errors": 0,
        "error_rate": 0.0,
        "duration_s": 10.0,
        "output_throughput": throughput,
        "input_throughput": 0.0,
        "total_throughput": throughput,
        "requests_per_second": 1.0,
        **{
            f"{m}_{p}_ms": 10.0
            for m in ("ttft", "tpot", "e2e")
            for p in ("mean", "p50", "p90", "p95", "p99")
        },
    }


def runs(trial_id: str, gpus: int, scores: list[float], number: int) -> list[TrialRecord]:
    """The search trial (first score) and its confirmation runs (the rest)."""
    records = []
    for i, score in enumerate(scores):
        records.append(
            TrialRecord(
                study_id="s",
                trial_id=trial_id if i == 0 else f"{trial_id}-c{i}",
                number=number if i == 0 else 100 + number * 10 + i,
                params={"tp_size": gpus, "max_running_requests": 16 * number},
                state=TrialState.COMPLETED,
                gpus=gpus,
                score=score,
                levels=[level(score * gpus)],
                confirms=None if i == 0 else trial_id,
            )
        )
    return records


def test_two_configs_within_noise_tie_and_the_cheaper_one_wins() -> None:
    # The 2-GPU config has the better mean, but runs spread by about 5 %: a tie.
    trials = runs("big", 2, [1010.0, 960.0, 1050.0], 1) + runs(
        "small", 1, [990.0, 1000.0, 960.0], 2
    )
    verdict = judge(trials, SPEC)
    assert verdict is not None
    assert verdict.tie and set(verdict.tied) == {"big", "small"}
    assert verdict.winner == "small"
    assert "a tie" in verdict.reason and "1 GPU(s)" in verdict.reason
    big = next(c for c in verdict.candidates if c.trial_id == "big")
    score = big.metrics["score"]
    assert score.n == 3 and score.low < score.mean < score.high
    assert big.metrics["output_throughput"].mean == 2 * score.mean


def test_a_winner_beyond_the_noise_is_named() -> None:
    trials = runs("big", 2, [1210.0, 1190.0, 1200.0], 1) + runs(
        "small", 1, [990.0, 1000.0, 995.0], 2
    )
    verdict = judge(trials, SPEC)
    assert verdict is not None and not verdict.tie
    assert verdict.winner == "big" and "beats the runner-up" in verdict.reason


def test_noise_free_runs_still_tie_within_the_margin() -> None:
    trials = runs("a", 2, [1000.0] * 3, 1) + runs("b", 1, [995.0] * 3, 2)
    verdict = judge(trials, SPEC)
    assert verdict is not None and verdict.tie and verdict.winner == "b"


def test_a_config_that_fails_a_rerun_cannot_win() -> None:
    trials = runs("flaky", 1, [1300.0, 1290.0], 1) + runs("steady", 1, [1000.0] * 3, 2)
    trials.append(
        trials[1].model_copy(
            update={"trial_id": "flaky-c9", "score": None, "state": TrialState.FAILED}
        )
    )
    verdict = judge(trials, SPEC)
    assert verdict is not None and verdict.winner == "steady"
    assert verdict.candidates[-1].trial_id == "flaky" and verdict.candidates[-1].failed_runs


def test_only_completed_search_trials_are_confirmed() -> None:
    trials = runs("a", 1, [900.0], 1) + runs("b", 1, [1000.0], 2) + runs("c", 1, [950.0], 3)
    trials[1] = trials[1].model_copy(update={"state": TrialState.STOPPED})
    assert [t.trial_id for t in top_trials(trials, SPEC)] == ["c", "a"]
    assert judge(trials, SPEC) is None


def test_an_estimate_of_one_run_has_no_spread() -> None:
    one = Estimate.of([5.0])
    assert (one.mean, one.low, one.high, one.n) == (5.0, 5.0, 5.0, 1)


def test_an_erratic_cheaper_config_does_not_replace_a_steady_better_one() -> None:
    # The 1-GPU config cannot be told apart (one run missed the SLO at its best level), but
    # its mean is far below the 2-GPU config's interval: a tie, and the better one is kept.
    trials = runs("steady", 2, [998.0, 996.0, 999.0], 1) + runs(
        "erratic", 1, [915.0, 580.0, 925.0], 2
    )
    verdict = judge(trials, SPEC)
    assert verdict is not None and verdict.tie and verdict.winner == "steady"
    assert "kept trial 1" in verdict.reason


def test_intervals_of_noisy_latencies_stay_positive_and_name_their_method() -> None:
    # A TTFT p99 over three runs that spread from 20 ms to 900 ms: a symmetric t-interval
    # would reach far below zero.
    ttft = Estimate.of([20.0, 900.0, 100.0])
    assert ttft.method == "log-t" and 0 < ttft.low < 20.0 < 900.0 < ttft.high
    assert ttft.mean == 340.0 and ttft.stdev > 400  # the Welch test still sees the raw spread
    errors = Estimate.of([0.0, 0.02, 0.0])  # a zero has no logarithm: t clipped at 0
    assert errors.method == "t>=0" and errors.low == 0.0 < errors.high
    assert Estimate.of([5.0]).low == Estimate.of([5.0]).high == 5.0
