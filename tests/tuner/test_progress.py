"""The CLI's tables: re-runs named, flagged levels counted, intervals never negative."""

from __future__ import annotations

import re

from rich.console import Console

from tests.tuner.search.test_confirm import SPEC, level
from tuner.bench.metrics import LevelMetrics
from tuner.cli._progress import confirmation_table, measurement_warnings, trials_table
from tuner.search import judge
from tuner.store import TrialRecord, TrialState


def _trial(trial_id: str, number: int, score: float, confirms: str | None = None,
           flag: str | None = None) -> TrialRecord:
    measured = LevelMetrics(**level(score)).model_copy(update={"client_bound": flag})
    return TrialRecord(study_id="s", trial_id=trial_id, number=number, gpus=1, score=score,
                       params={"tp_size": 1, "max_running_requests": 16 * number},
                       state=TrialState.COMPLETED, confirms=confirms, levels=[measured])


def _text(table: object) -> str:
    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def test_reruns_flags_and_positive_intervals_in_the_tables() -> None:
    flag = "ttft_mean_ms 120.0 (client) vs 20.0 (server)"
    # Scores spread so widely that a symmetric t-interval of the TTFT would go negative.
    trials = [_trial("a", 1, 100.0, flag=flag), _trial("a1", 3, 20.0, "a"),
              _trial("a2", 4, 900.0, "a"), _trial("b", 2, 50.0), _trial("b1", 5, 60.0, "b")]
    table = _text(trials_table(SPEC, trials, "a"))
    assert "re-run of #1" in table and "re-run of #2" in table and "client_bound" in table
    timed = trials[0].model_copy(update={"timings": {"deploy_s": 95.2, "warmup_s": 3.46,
                                                     "bench_s": 120.0}})
    assert " 219 " in _text(trials_table(SPEC, [timed], "a"))  # 95.2 + 3.46 + 120
    assert measurement_warnings(trials) == [f"trial 1 D(1024,256) c=32 client_bound: {flag}"]
    verdict = judge(trials, SPEC)
    assert verdict is not None
    confirmation = _text(confirmation_table(SPEC, verdict))
    assert "log-t" in confirmation
    lows = [float(x) for x in re.findall(r"\[(-?[\d.]+),", confirmation)]
    assert lows and min(lows) > 0, confirmation
