"""Early stopping on the concurrency ladder: stop only trials that cannot beat the best."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import TrialScheduler

from tuner.search import LadderRule, LadderScheduler

LOADS = [8, 16, 32, 64]


def finish(rule: LadderRule, trial_id: str, levels: list[float]) -> None:
    """Report a trial that met the SLO at every level: its score is its last level."""
    for i, value in enumerate(levels):
        assert rule.report(trial_id, value, level_value=value, final=i == len(levels) - 1) is None


def test_before_any_trial_finishes_nothing_stops() -> None:
    rule = LadderRule("max", LOADS)
    assert rule.report("a", 1.0, level_value=1.0, final=False) is None


def test_a_flattened_trial_stops_and_a_climbing_one_goes_on() -> None:
    rule = LadderRule("max", LOADS)
    finish(rule, "best", [100, 200, 400, 800])
    # Throughput is concave in concurrency: from 16 on it rises at most as steeply as it did
    # from 8 to 16. 200 rising 12.5/client can still pass 800 (950, +25 % slope, +5 % noise)...
    assert rule.report("steep", 100, level_value=100, final=False) is None
    assert rule.report("steep", 200, level_value=200, final=False) is None
    # ...but 110 rising 1.25/client reaches about 194: stop, and say why.
    assert rule.report("flat", 100, level_value=100, final=False) is None
    why = rule.report("flat", 110, level_value=110, final=False)
    assert why is not None and "at concurrency 16" in why and "below the best so far (800)" in why


def test_a_trial_about_to_break_the_slo_cannot_climb_far() -> None:
    rule = LadderRule("max", LOADS)
    finish(rule, "best", [100, 200, 400, 800])
    # Throughput still rises steeply (200 -> 950 at 64 would pass 800), but the SLO excess
    # rose from -0.6 to -0.2 between 8 and 16: at even half that pace, the bound breaks
    # before 32, so 16 is as high as it gets.
    assert rule.report("a", 100, level_value=100, level_excess=-0.6, final=False) is None
    why = rule.report("a", 200, level_value=200, level_excess=-0.2, final=False)
    assert why is not None and "below the best" in why
    # With room below the bound, the same throughput goes on.
    assert rule.report("b", 100, level_value=100, level_excess=-0.9, final=False) is None
    assert rule.report("b", 200, level_value=200, level_excess=-0.85, final=False) is None


def test_at_the_lowest_level_only_linear_growth_is_ruled_out() -> None:
    rule = LadderRule("max", LOADS)
    finish(rule, "best", [100, 200, 400, 800])
    # From concurrency 8 throughput can at most grow in proportion to load, 8x; with the
    # slack on slope and noise about 10x: 80 may still pass 800, 60 cannot.
    assert rule.report("a", 80, level_value=80, final=False) is None
    assert rule.report("b", 60, level_value=60, final=False) is not None


def test_a_latency_objective_never_improves_with_load() -> None:
    rule = LadderRule("min", LOADS)
    for i, latency in enumerate([40, 45, 50, 60]):  # the score: the lowest latency, 40
        rule.report("a", 40, level_value=latency, final=i == 3)
    assert rule.report("b", 41, level_value=41, final=False) is None  # within noise
    assert rule.report("c", 45, level_value=45, final=False) is not None


class FakeTrial:
    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


def test_the_scheduler_stops_and_remembers_why() -> None:
    scheduler = LadderScheduler("max", LOADS)
    for value in [100, 200, 400]:
        result: dict[str, Any] = {"objective": value, "rung_value": value, "gpus": 1}
        assert scheduler.on_trial_result(None, FakeTrial("a"), result) == "CONTINUE"
    # Tune hands a trial's last (done) result to on_trial_complete only.
    scheduler.on_trial_complete(
        None,
        FakeTrial("a"),
        {"objective": 800.0, "rung_value": 800.0, "gpus": 1, "ladder_done": True},
    )
    trial = FakeTrial("b")
    assert (
        scheduler.on_trial_result(None, trial, {"objective": 60.0, "rung_value": 60.0, "gpus": 1})
        == TrialScheduler.STOP
    )
    assert "below the best" in scheduler.stopped["b"]
    failed = FakeTrial("c")
    assert (
        scheduler.on_trial_result(None, failed, {"objective": 0.0, "failed": True, "done": True})
        == "CONTINUE"
    )
