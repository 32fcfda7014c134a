"""Whole studies on the twin: GPU-bounded parallel trials, failures, stop, resume, quickstart.

These run real Ray Tune, real twin processes and real genai-bench, kept small (tiny scenarios,
few requests, a fast time scale).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from tuner import StopToken, run_study
from tuner.backends._process import STUDY_TAG
from tuner.spec import spec_from_dict
from tuner.store import StudyState, TrialState, open_store

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
AUTOTUNER = [sys.executable, "-m", "tuner.cli"]


def small_spec(name: str, space: dict[str, Any], gpus: int, **changes: Any) -> Any:
    data: dict[str, Any] = {
        "name": name,
        "model": {"name": "Llama-3.1-8B-Instruct"},
        "backend": {"kind": "twin", "gpu": "H100", "gpus": gpus, "time_scale": 8,
                    "startup_timeout_s": 60},
        "space": space,
        "workload": {"scenarios": ["D(64,32)"], "concurrency": [2],
                     "max_requests_per_level": 6, "max_seconds_per_level": 60},
        "objective": {"slo": {"tpot_p99_ms": 1000, "ttft_p99_ms": 10000}},
        # Plain grid: these tests are about the driver, not the search (tests/tuner/search).
        "search": {"algorithm": "grid", "prescreen": None, "confirm": {"top_k": 0}},
        "trial_timeout_s": 300,
    }
    data.update(changes)
    return spec_from_dict(data)


def servers_of(study_id: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(STUDY_TAG) == study_id:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


def busy_units(trials: list[Any]) -> int:
    """The most GPU units held at once, from the trials' start and end times."""
    edges = sorted([(t.started_at, t.gpus) for t in trials if t.started_at]
                   + [(t.ended_at, -t.gpus) for t in trials if t.started_at],
                   key=lambda edge: (edge[0], edge[1]))
    peak = held = 0
    for _, change in edges:
        held += change
        peak = max(peak, held)
    return peak


def test_trials_run_in_parallel_within_the_gpus_and_failures_do_not_stop_it(
        ray_pool: int, tmp_path: Path) -> None:
    spec = small_spec("bounded", {"mem_fraction_static": [0.1, 0.85], "tp_size": [1, 2]},
                      gpus=3)
    store = open_store(tmp_path / "s.db")
    result = run_study(spec, store=store)
    trials = result.trials
    assert result.study.state == StudyState.COMPLETED
    assert len(trials) == 4
    # 16 GB of weights do not fit in 10 % of an H100, nor do 8 GB per GPU with tp_size 2.
    failed = [t for t in trials if t.state == TrialState.FAILED]
    assert [t.params["mem_fraction_static"] for t in failed] == [0.1, 0.1], trials
    assert all(t.reason == "oom" and "memory" in (t.message or "").lower() for t in failed)
    completed = [t for t in trials if t.state == TrialState.COMPLETED]
    assert len(completed) == 2 and all(t.levels and t.score for t in completed)
    assert busy_units(trials) <= 3  # the study's capacity, below the Ray pool of 4
    overlaps = [(a.number, b.number) for a in trials for b in trials
                if a.number < b.number and a.started_at < b.ended_at
                and b.started_at < a.ended_at]
    assert overlaps, "with 3 GPUs, a 1-GPU and a 2-GPU trial should run together"
    assert result.best is not None and result.best.state == TrialState.COMPLETED
    assert servers_of(result.study.study_id) == []
    # Each trial is announced while its server deploys, before it is reported started.
    kinds = [(e.trial_id, e.kind) for e in store.events(result.study.study_id)]
    for trial in trials:
        pending = kinds.index((trial.trial_id, "trial_pending"))
        assert pending < kinds.index((trial.trial_id, "trial_started"))


def test_a_stopped_study_leaves_nothing_running(ray_pool: int, tmp_path: Path) -> None:
    spec = small_spec("stopped", {"schedule_policy": ["fcfs", "lpm"], "tp_size": [1, 2]},
                      gpus=2)
    store = open_store(tmp_path / "s.db")
    from tuner import create_study

    study_id = create_study(spec, store=store).study_id
    outcome: dict[str, Any] = {}
    stop = StopToken()
    thread = threading.Thread(target=lambda: outcome.update(
        result=run_study(spec, store=store, study_id=study_id, stop=stop)))
    thread.start()
    deadline = time.monotonic() + 60
    while not servers_of(study_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert servers_of(study_id), "no twin server started"
    stop.set()
    thread.join(timeout=120)
    assert not thread.is_alive()
    result = outcome["result"]
    assert result.study.state == StudyState.STOPPED
    assert all(t.state.is_finished() for t in result.trials)
    assert len(result.trials) < 4
    assert servers_of(study_id) == []


def test_quickstart_end_to_end(tmp_path: Path) -> None:
    # The quickstart as shipped takes about three minutes (benchmarks/repeatability.py runs
    # it whole); here the same study, made small: two candidates, one level, no confirmation,
    # and the twin at 4x real time (start-up included).
    data = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    data["backend"]["time_scale"] = 4
    data["space"]["max_running_requests"] = [8, 2048]
    data["workload"].update(concurrency=[8], max_requests_per_level=16)
    data["search"]["confirm"] = {"top_k": 0}
    spec = tmp_path / "quickstart.yaml"
    spec.write_text(yaml.safe_dump(data))
    env = {**os.environ, "AUTOTUNER_HOME": str(tmp_path)}
    run = subprocess.run([*AUTOTUNER, "run", str(spec), "--json"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert "best:" in run.stderr and "launch:" in run.stderr
    best = summary["best"]
    assert best["score"] > 0 and best["metrics"]["output_throughput"] == pytest.approx(
        best["score"])
    assert "twin.launch_server" in best["launch"]
    assert len(summary["trials"]) == 2
    assert servers_of(summary["study"]) == []
    shown = subprocess.run([*AUTOTUNER, "show", summary["study"]], env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert summary["study"] in shown.stdout or "quickstart" in shown.stdout
    exported = subprocess.run([*AUTOTUNER, "export", summary["study"]], env=env,
                              capture_output=True, text=True, timeout=60)
    assert exported.stdout.strip() == best["launch"]
