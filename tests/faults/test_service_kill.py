"""SIGKILL of ``autotuner serve`` with two studies running, then a restart on the same store."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import (
    INTERRUPTED,
    Service,
    config_key,
    grid_keys,
    kill_group,
    service,
    spec_data,
    tagged,
    wait_until,
)

pytestmark = pytest.mark.slow


def _running_with_a_trial(live: Service, ids: list[str]) -> bool:
    studies = live.studies()
    if any(studies[i]["state"] != "running" for i in ids):
        return False
    return all(any(t["state"] == "running" for t in live.trials(i)) for i in ids)


@pytest.mark.timeout(420)
def test_a_killed_service_marks_its_studies_interrupted_sweeps_them_and_resumes_them(
        tmp_path: Path, studies: set[str]) -> None:
    specs = [spec_data(f"svc-{n}", gpus=1, faults=["slow-start=1"],
                       space={"schedule_policy": ["fcfs", "lpm"]}) for n in (1, 2)]
    with service(tmp_path) as first:
        ids = []
        for data in specs:
            created = first.request("POST", "/api/studies", json=data)
            assert created.status_code == 201, created.text
            ids.append(created.json()["study_id"])
        studies.update(ids)
        wait_until(lambda: _running_with_a_trial(first, ids), 120,
                   "both studies running with a trial started")
        kill_group(first.process)  # the service, its Ray and trial actors; servers survive
        assert first.errors_5xx == 0
    with service(tmp_path) as second:
        def interrupted() -> bool:
            listed = second.studies()
            return all(listed[i]["state"] == INTERRUPTED for i in ids)

        wait_until(interrupted, 15, "both studies to show as interrupted after the restart")
        wait_until(lambda: tagged(set(ids)) == [], 20, "the killed studies' servers to go")
        for study_id in ids:
            resumed = second.request("POST", f"/api/studies/{study_id}/resume")
            assert resumed.status_code == 202, resumed.text

        def completed() -> bool:
            listed = second.studies()
            assert not any(listed[i]["state"] in ("failed", "stopped") for i in ids), listed
            return all(listed[i]["state"] == "completed" for i in ids)

        wait_until(completed, 180, "both resumed studies to complete", interval=1)
        for study_id, data in zip(ids, specs, strict=True):
            trials = [t for t in second.trials(study_id) if t.get("confirms") is None]
            assert sorted(config_key(t["params"]) for t in trials) == grid_keys(data), trials
        assert tagged(set(ids)) == []
        assert second.errors_5xx == 0, second.log_tail()
