"""The study's best trial as results arrive: kept in the store, never a failed trial."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tuner.store import open_store
from tuner.trial._callbacks import StoreCallback


def trial(trial_id: str, **config: Any) -> Any:
    """What the callback reads of a Tune trial."""
    return SimpleNamespace(
        trial_id=trial_id, config=config, last_result={}, status="RUNNING",
        placement_group_factory=SimpleNamespace(required_resources={"GPU": 1}))


def test_the_best_follows_scores_and_leaves_a_trial_that_fails(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store.db")
    study = store.create_study("s-1", "s", {}).study_id
    callback = StoreCallback(store, study, "max")
    a, b = trial("a", max_running_requests=8), trial("b", max_running_requests=16)
    callback.on_trial_result(0, [a, b], a, {"score": 10.0})
    callback.on_trial_result(0, [a, b], b, {"score": 5.0})
    assert store.get_study(study).best_trial_id == "a"
    # a's server dies in its next level: a is no longer a candidate, b is the best
    callback.on_trial_result(0, [a, b], a, {"failed": True, "reason": "crashed",
                                            "message": "server exited"})
    assert store.get_study(study).best_trial_id == "b"
    callback.on_trial_result(0, [a, b], b, {"failed": True, "reason": "crashed"})
    assert store.get_study(study).best_trial_id is None


def test_a_resumed_study_keeps_its_earlier_best(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store.db")
    study = store.create_study("s-1", "s", {}).study_id
    first = StoreCallback(store, study, "max")
    a = trial("a", max_running_requests=8)
    first.on_trial_result(0, [a], a, {"score": 10.0})
    first.on_trial_complete(0, [a], a)
    resumed = StoreCallback(store, study, "max")  # a new driver: nothing in memory
    b = trial("b", max_running_requests=16)
    resumed.on_trial_result(0, [b], b, {"score": 5.0})
    assert store.get_study(study).best_trial_id == "a"
