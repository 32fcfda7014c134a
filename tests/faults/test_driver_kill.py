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
    cli_env,
    config_key,
    drop_env,
    grid_keys,
    kill_group,
    kill_tagged,
    run_cli,
    spec_data,
    start_cli,
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
    home = tmp_path_factory.mktemp("driver-kill")
    data = spec_data("killed", gpus=2, space={"schedule_policy": ["fcfs", "lpm"],
                                              "chunked_prefill_size": [1024, 2048, 4096]},
                     faults=["slow-start=1"])
    spec_path = home / "spec.json"
    spec_path.write_text(json.dumps(data))
    store_path = home / "s.db"
    env = cli_env(home)
    driver = start_cli(["--store", str(store_path), "run", str(spec_path)], env,
                       home / "driver.log")
    store = open_store(store_path)
    ids: set[str] = set()
    try:
        def midway() -> bool:
            studies = store.list_studies()
            if not studies:
                return False
            ids.add(studies[0].study_id)
            states = [t.state.value for t in store.list_trials(studies[0].study_id)]
            return "completed" in states and "running" in states

        wait_until(midway, 180, "a completed and a running trial at once", interval=0.2)
        (study_id,) = ids
        kill_group(driver)  # the driver, its Ray and its trial actors; twin servers survive
        # Shown as running, or as interrupted once the store sees that their driver is gone.
        running = [t.params for t in store.list_trials(study_id)
                   if t.state.value in ("running", INTERRUPTED)]
        yield Killed(study_id, store_path, env, data, _fingerprint(store, study_id), running)
    finally:
        kill_group(driver)
        kill_tagged(ids)
        drop_env(env)


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
    assert len(trials) == 6, [(t.number, t.state.value, t.params) for t in trials]
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
