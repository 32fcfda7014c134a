"""Estimate studies run in the driver, a batch at a time (``Backend.IN_PROCESS``), and record
what a study run through Ray Tune records: the same trials, scores, reasons and events."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tuner import run_study
from tuner.backends._estimate import EstimateBackend
from tuner.spec import spec_from_dict
from tuner.store import StudyState, TrialState, open_store

pytestmark = pytest.mark.timeout(300)


def _spec(name: str) -> Any:
    return spec_from_dict(
        {
            "name": name,
            "model": {"name": "Llama-3.1-8B-Instruct"},
            "backend": {"kind": "estimate", "gpu": "H100", "gpus": 2},
            # 0.1 leaves no room for the KV cache: those trials fail as the server would
            "space": {"max_running_requests": [4, 64], "mem_fraction_static": [0.1, 0.85]},
            "workload": {
                "scenarios": ["D(512,128)"],
                "concurrency": [4, 64],
                "max_requests_per_level": 40,
            },
            "objective": {"slo": {"tpot_p99_ms": 60, "ttft_p99_ms": 5000}},
            "search": {
                "algorithm": "grid",
                "prescreen": None,
                "early_stopping": False,
                "confirm": {"top_k": 1, "repeats": 1},
            },
        }
    )


def _summary(store: Any, study_id: str) -> dict[str, Any]:
    trials = store.list_trials(study_id)
    kinds: dict[str, Counter[str]] = {}
    for event in store.events(study_id):
        if event.trial_id is not None:
            kinds.setdefault(event.trial_id, Counter())[event.kind.value] += 1
    by_config = {}
    for t in trials:
        key = (str(sorted(t.params.items())), t.confirms is not None)
        by_config[key] = (
            t.state,
            t.reason,
            None if t.score is None else round(t.score, 3),
            [(lv.scenario, lv.concurrency) for lv in t.levels],
            # started/pending announcements differ in kind by design; the rest must match
            sorted(k for k in kinds.get(t.trial_id, {}) if k not in {"trial_pending"}),
        )
    return by_config


def test_an_estimate_study_records_what_a_tune_study_records(
    ray_pool: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path / "s.db")
    in_process = run_study(_spec("inproc"), store=store)
    # No Ray Tune experiment was started: nothing was written to the study's workdir by Tune.
    workdir = store.path.parent / "studies" / in_process.study.study_id
    assert not list(workdir.glob("search-*")) and not list(workdir.glob("confirm-*"))
    monkeypatch.setattr(EstimateBackend, "IN_PROCESS", False)
    through_tune = run_study(_spec("tune"), store=store)

    assert in_process.study.state == through_tune.study.state == StudyState.COMPLETED
    ours = _summary(store, in_process.study.study_id)
    theirs = _summary(store, through_tune.study.study_id)
    assert ours == theirs
    states = Counter(state for state, *_ in ours.values())
    assert states == {TrialState.COMPLETED: 3, TrialState.FAILED: 2}  # 4 + 1 confirmation
    assert in_process.best is not None
    assert in_process.best.params == through_tune.best.params  # type: ignore[union-attr]
    assert [t.number for t in in_process.trials] == [1, 2, 3, 4]


def test_an_in_process_study_stops_between_batches(ray_pool: int, tmp_path: Path) -> None:
    from tuner import StopToken

    stop = StopToken()
    calls = 0
    original = EstimateBackend.measure

    def measure(self: EstimateBackend, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        stop.set()  # the user presses Stop while the first batch runs
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EstimateBackend, "measure", measure)
        result = run_study(_spec("stop"), store=open_store(tmp_path / "s.db"), stop=stop)
    assert result.study.state == StudyState.STOPPED
    assert len(result.trials) == 2  # the first batch (two at once on 2 GPUs), nothing after
    assert all(t.state.is_finished() for t in result.trials)
    assert not result.confirmations


def test_an_in_process_study_needs_no_ray_units(ray_pool: int, tmp_path: Path) -> None:
    # The shared Ray pool has 4 units; eight simulated GPUs in the driver need none of them.
    data = _spec("big").model_dump(mode="json")
    data["backend"]["gpus"] = 8
    data["space"] = {"tp_size": [8], "max_running_requests": [16, 64]}
    result = run_study(spec_from_dict(data), store=open_store(tmp_path / "s.db"))
    assert ray_pool < 8
    assert result.study.state == StudyState.COMPLETED
    assert [t.gpus for t in result.trials] == [8, 8]
