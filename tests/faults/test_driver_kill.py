"""SIGKILL of the CLI driver mid-study, then ``autotuner list`` and ``autotuner resume``.

One killed study (a module fixture: the kill costs a Ray start and a few trials) serves both
tests. ``list`` must run before ``resume``, as the file orders them; each test also passes
when run alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tuner.store import Store, open_store

from .support import (
    INTERRUPTED,
    config_key,
    driver_killed_midway,
    grid_keys,
    killed_driver_data,
    run_cli,
    tagged,
    wait_until,
)

pytestmark = pytest.mark.slow


@dataclass
class Killed:
    """A study whose driver was SIGKILLed with trials completed and running."""

    study_id: str
    store_path: Path
    env: dict[str, str]
    data: dict[str, Any]
    completed: dict[str, tuple[Any, ...]]  # trial id -> (score, levels, ended_at, params)
    running: list[dict[str, Any]]  # the params of the trials cut short by the kill
    resumed: bool = False


def _fingerprint(store: Store, study_id: str) -> dict[str, tuple[Any, ...]]:
    return {t.trial_id: (t.score, t.levels, t.ended_at, t.params)
            for t in store.list_trials(study_id) if t.state.value == "completed"}


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Killed]:
    data = killed_driver_data()
    with driver_killed_midway(tmp_path_factory.mktemp("driver-kill"), data) as driver:
        store = open_store(driver.store_path)
        # Shown as running, or as interrupted once the store sees that their driver is gone.
        running = [t.params for t in store.list_trials(driver.study_id)
                   if t.state.value in ("running", INTERRUPTED)]
        yield Killed(driver.study_id, driver.store_path, driver.env, data,
                     _fingerprint(store, driver.study_id), running)


@pytest.mark.timeout(300)
def test_list_shows_a_study_whose_driver_was_killed_as_interrupted(killed: Killed) -> None:
    if killed.resumed:
        pytest.skip("the study was resumed already (run this test before the resume test)")

    def listed_interrupted() -> bool:
        listing = run_cli(["--store", str(killed.store_path), "list"], killed.env, timeout=60)
        assert listing.returncode == 0, listing.stderr[-2000:]
        rows = [line for line in listing.stdout.splitlines() if killed.study_id in line]
        assert rows, listing.stdout
        return INTERRUPTED in rows[0]

    wait_until(listed_interrupted, 20, "`autotuner list` to show the study as interrupted",
               interval=1)
    assert open_store(killed.store_path).get_study(killed.study_id).state.value == INTERRUPTED


@pytest.mark.timeout(400)
def test_resume_keeps_completed_trials_and_reruns_each_interrupted_one_once(
        killed: Killed) -> None:
    assert killed.completed and killed.running
    killed.resumed = True
    resumed = run_cli(["--store", str(killed.store_path), "resume", killed.study_id, "--json"],
                      killed.env, timeout=360)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout)["state"] == "completed"
    store = open_store(killed.store_path)
    trials = [t for t in store.list_trials(killed.study_id) if t.confirms is None]
    # A crash-free run has one trial per grid point: no more, no fewer, none twice.
    assert len(trials) == len(grid_keys(killed.data)), [(t.number, t.state.value, t.params)
                                                         for t in trials]
    assert sorted(config_key(t.params) for t in trials) == grid_keys(killed.data)
    assert all(t.state.value == "completed" for t in trials), trials
    # What was finished before the kill is untouched: same rows, same scores, same levels.
    after = _fingerprint(store, killed.study_id)
    for trial_id, before in killed.completed.items():
        assert after.get(trial_id) == before, f"completed trial {trial_id} was changed"
    # Each config interrupted mid-trial ran again, exactly once.
    keys = [config_key(t.params) for t in trials]
    assert all(keys.count(config_key(params)) == 1 for params in killed.running)
    assert tagged({killed.study_id}) == []
    assert store.get_study(killed.study_id).state.value == "completed"
