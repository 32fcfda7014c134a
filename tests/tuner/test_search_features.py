"""Search features end to end on the estimate backend: early stopping frees GPUs, the default
pipeline (pre-screen, Bayesian search, confirmation) records what it did, and a
multi-objective study reports its Pareto front."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuner import run_study
from tuner.backends._estimate import EstimateBackend
from tuner.cli import main
from tuner.spec import spec_from_dict
from tuner.store import StudyState, TrialState, open_store
from tuner.study import StudyResult

pytestmark = pytest.mark.timeout(300)


def estimate_spec(name: str, gpus: int, **changes: Any) -> Any:
    data: dict[str, Any] = {
        "name": name,
        "model": {"name": "Llama-3.1-8B-Instruct"},
        "backend": {"kind": "estimate", "gpu": "H100", "gpus": gpus},
        "space": {"max_running_requests": [128, 64, 32, 16, 8, 4]},
        "workload": {
            "scenarios": ["D(512,128)"],
            "concurrency": [4, 16, 64, 128],
            "max_requests_per_level": 60,
        },
        "objective": {"slo": {"tpot_p99_ms": 60, "ttft_p99_ms": 5000}},
        "search": {"algorithm": "grid", "prescreen": None, "confirm": {"top_k": 0}},
    }
    data.update(changes)
    return spec_from_dict(data)


def test_an_early_stopped_trial_frees_its_gpus(
    ray_pool: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One GPU: a trial can start only when the one before it gave its unit back. The grid
    # runs the large max_running_requests first, so the small ones cannot catch up. The
    # estimate backend stands in for a server backend here: its trials go through Ray Tune.
    monkeypatch.setattr(EstimateBackend, "IN_PROCESS", False)
    spec = estimate_spec("early", gpus=1)
    result = run_study(spec, store=open_store(tmp_path / "s.db"))
    trials = result.trials
    assert result.study.state == StudyState.COMPLETED
    assert len(trials) == 6 and all(t.state.is_finished() for t in trials)
    stopped = [t for t in trials if t.reason == "early_stopped"]
    assert stopped, [(t.number, t.state, len(t.levels)) for t in trials]
    assert all(
        t.state == TrialState.STOPPED
        and "below the best" in (t.message or "")
        and 0 < len(t.levels) < 4
        for t in stopped
    )
    # The study's one unit was free again after the first early stop: the trials after it ran.
    first = min(stopped, key=lambda t: t.number)
    later = [t for t in trials if t.number > first.number]
    assert later and all(t.levels or t.state == TrialState.FAILED for t in later)
    assert all(t.started_at >= first.started_at for t in later)
    best = result.best
    assert best is not None and best.params["max_running_requests"] >= 32


def test_the_default_pipeline_prescreens_searches_and_confirms(
    ray_pool: int, tmp_path: Path
) -> None:
    spec = estimate_spec(
        "pipeline",
        gpus=2,
        space={
            "max_running_requests": [4, 16, 64],
            "mem_fraction_static": [0.1, 0.85],
            "chunked_prefill_size": [1024, 4096],
        },
        search={"max_trials": 5, "prescreen": {"top_k": 2}, "confirm": {"top_k": 2, "repeats": 1}},
    )
    store = open_store(tmp_path / "s.db")
    result = run_study(spec, store=store)
    assert result.study.state == StudyState.COMPLETED
    events = {e.kind: e for e in store.events(result.study.study_id)}
    assert events["prescreen"].data["reasons"] == {"oom": 6}
    seeds = [s["params"] for s in events["prescreen"].data["seeds"]]
    # The best predicted are measured first (the two run at once, so in either order).
    first = [t.params for t in result.trials[:2]]
    assert sorted(first, key=str) == sorted(seeds, key=str)
    assert all(t.params["mem_fraction_static"] == 0.85 for t in result.trials)
    assert len(result.confirmations) == 2
    assert {t.confirms for t in result.confirmations} <= {t.trial_id for t in result.trials}
    verdict = result.confirmation
    assert verdict is not None and verdict.winner == result.study.best_trial_id
    assert events["confirmation"].data["winner"] == verdict.winner
    assert StudyResult.load(store, result.study.study_id).confirmations == result.confirmations
    assert set(events["study_finished"].data["importance"]) <= set(spec.space)


def test_a_multi_objective_study_reports_its_pareto_front(
    ray_pool: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = estimate_spec(
        "pareto",
        gpus=2,
        space={"max_running_requests": [4, 16, 64, 128], "chunked_prefill_size": [1024, 4096]},
        objective={"per_gpu": True, "pareto": "tpot_p99_ms", "slo": {"tpot_p99_ms": 60}},
        search={"algorithm": "bayes", "max_trials": 6, "prescreen": None, "confirm": {"top_k": 0}},
    )
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec.model_dump(mode="json")))
    assert main(["--store", str(tmp_path / "s.db"), "run", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    front = json.loads(captured.out)["pareto"]
    assert front and "Pareto front" in captured.err
    latencies = [p["latency"] for p in front]
    scores = [p["score"] for p in front]
    assert latencies == sorted(latencies) and scores == sorted(scores)  # a real trade-off
    assert all(p["latency"] <= 60 for p in front)
    assert {"trial", "params", "concurrency", "gpus"} <= set(front[0])
