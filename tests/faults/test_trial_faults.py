"""Faults of a trial's server, injected with the twin's ``--fault`` (``backend.faults``).

Each test runs a tiny grid in this process on the session's Ray and checks the trial rows
(state, reason, message), the server logs, and that no server is left running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tuner import TrialRecord, create_study, run_study
from tuner.backends import deployment_name
from tuner.spec import spec_from_dict
from tuner.store import open_store

from .support import (
    CRASHED,
    SLO_VIOLATED,
    ServerSampler,
    first_level_slow_ttfts,
    server_logs,
    spec_data,
    starts,
    tagged,
)

pytestmark = pytest.mark.slow


def run(tmp_path: Path, studies: set[str], data: dict[str, Any]) -> tuple[str, list[TrialRecord]]:
    spec = spec_from_dict(data)
    store = open_store(tmp_path / "s.db")
    study_id = create_study(spec, store=store).study_id
    studies.add(study_id)
    result = run_study(spec, store=store, study_id=study_id)
    assert result.study.state.value == "completed", result.study.message
    return study_id, store.list_trials(study_id)


@pytest.mark.timeout(200)
def test_a_server_that_exits_mid_level_fails_the_trial_as_crashed(
        ray_pool: int, tmp_path: Path, studies: set[str]) -> None:
    # 6 requests per level at concurrency 2: the third request ends the server (status 1).
    data = spec_data("crash", space={"schedule_policy": ["fcfs", "lpm"]},
                     faults=["crash-after=2"], requests=6)
    study_id, trials = run(tmp_path, studies, data)
    assert len(trials) == 2
    for trial in trials:
        assert trial.state.value == "failed", trial
        assert trial.reason == CRASHED, trial
        message = trial.message or ""
        assert "exit" in message.lower(), message  # the exit status...
        assert "injected fault crash-after=2" in message, message  # ...and the log's tail
        assert trial.score is None
    assert tagged({study_id}) == []
    # Dead during the warm-up wave (its second request): the same, said of the warm-up.
    data = spec_data("crash-warm", space={"schedule_policy": ["fcfs"]},
                     faults=["crash-after=1"], requests=6)
    study_id, trials = run(tmp_path / "warm", studies, data)
    assert [t.reason for t in trials] == [CRASHED], trials
    message = trials[0].message or ""
    assert "injected fault crash-after=1" in message and "during the warm-up" in message, message
    assert tagged({study_id}) == []


@pytest.mark.timeout(150)
def test_http_500s_make_the_trial_miss_the_slo_with_the_reason_in_its_row(
        ray_pool: int, tmp_path: Path, studies: set[str]) -> None:
    data = spec_data("http500", space={"schedule_policy": ["fcfs", "lpm"]},
                     faults=["http500-rate=0.5"], requests=8)
    study_id, trials = run(tmp_path, studies, data)
    assert len(trials) == 2
    for trial in trials:
        assert trial.state.value == "completed", trial
        assert trial.score is None, trial
        assert trial.reason == SLO_VIOLATED, trial
        assert "error_rate" in (trial.message or ""), trial
        assert trial.levels and trial.levels[0].error_rate > 0.01
    assert tagged({study_id}) == []


@pytest.mark.timeout(180)
def test_slow_starting_servers_are_started_once_each_and_never_twice_at_once(
        ray_pool: int, tmp_path: Path, studies: set[str]) -> None:
    # Four configs on two GPUs: two rounds of two parallel trials, so trial actors get reused
    # while servers of the first round are still going and those of the second still starting.
    data = spec_data("slow", space={"schedule_policy": ["fcfs", "lpm"],
                                    "chunked_prefill_size": [1024, 4096]},
                     gpus=2, faults=["slow-start=3"], requests=4)
    with ServerSampler(lambda: set(studies)) as sampler:
        study_id, trials = run(tmp_path, studies, data)
    assert sampler.samples > 10, "the sampler did not run during the study"
    assert sampler.doubled() == {}, f"two live servers for one trial: {sampler.doubled()}"
    assert len(trials) == 4 and all(t.state.value == "completed" for t in trials), trials
    logs = server_logs(tmp_path / "studies" / study_id)
    assert sorted(logs) == sorted(deployment_name(study_id, t.trial_id) for t in trials)
    for name, log in logs.items():
        assert starts(log) == 1, f"{name} was started {starts(log)} times:\n{log[-2000:]}"
        assert "address already in use" not in log.lower(), f"{name}:\n{log[-2000:]}"
    assert tagged({study_id}) == []


@pytest.mark.timeout(180)
def test_the_warm_up_wave_keeps_cold_kernels_out_of_the_first_level(
        ray_pool: int, tmp_path: Path, studies: set[str]) -> None:
    # The server's first prefill longer than SGLang's own warm-up prompt takes 3 s more (as
    # kernels compiling on first use): without the tuner's warm-up, the first level's first
    # wave pays it. Counted in the server's own TTFT histogram of the level, not a client
    # percentile, which over the level's few hundred requests may fall either side of 2.
    slow, warmed, timings = {}, {}, {}
    for warmup in (0, None):
        data = spec_data(f"cold-{warmup or 'default'}", space={"schedule_policy": ["fcfs"]},
                         faults=["cold-prefill=3"], requests=6)
        data["workload"]["warmup_requests"] = warmup
        study_id, trials = run(tmp_path / f"w{warmup}", studies, data)
        assert len(trials) == 1 and trials[0].state.value == "completed", trials
        slow[warmup] = first_level_slow_ttfts(trials[0])
        timings[warmup] = trials[0].timings
        events = open_store(tmp_path / f"w{warmup}" / "s.db").events(study_id)
        warmed[warmup] = [e.data for e in events if e.kind.value == "trial_warmed_up"]
    assert slow[0] >= 1, slow  # the fault bites when nothing warms up
    assert slow[None] == 0, slow  # the default wave took the cost
    # The wave is in the study's events: the first level's 2 users, all answered.
    assert warmed[0] == [], warmed
    assert [(w["requests"], w["failed"], w["error"]) for w in warmed[None]] == [(2, 0, None)]
    # and in the trial's timings, apart from the levels': the wave paid the 3 s (at the
    # twin's time scale, 50).
    assert "warmup_s" not in timings[0], timings
    assert timings[None]["warmup_s"] >= 3 / 50, timings
    assert timings[None]["warmup_s"] == warmed[None][0]["seconds"], timings
