"""Trials on a two-node Ray cluster: placement, per-node clean-up, actor and node loss.

The scenarios run once, in their own process (``two_nodes.py``), on a real
``ray.cluster_utils.Cluster`` with 2 ``autotuner_gpu`` units per node; each test checks one
scenario's findings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).with_name("two_nodes.py")


@pytest.fixture(scope="module")
def findings() -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          timeout=900, cwd=SCRIPT.parents[2])
    assert done.returncode == 0, done.stderr[-4000:]
    last = done.stdout.strip().splitlines()[-1]  # Ray may print its own lines before
    return dict(json.loads(last))


def test_cluster_check_lists_the_nodes_and_says_whether_a_study_fits(
        findings: dict[str, Any]) -> None:
    fits, too_big = findings["check"]
    assert fits["code"] == 0, fits["stderr"]
    nodes = fits["report"]["nodes"]
    assert {n["node_id"] for n in nodes} == {findings["head"], findings["worker"]}
    assert all(n["units"] == 2 and n["problem"] is None for n in nodes)
    assert too_big["code"] == 1 and "largest node has 2" in too_big["report"]["verdict"]


def test_a_config_that_fits_no_node_is_refused_up_front(findings: dict[str, Any]) -> None:
    message = findings["infeasible"]
    assert message is not None, "a tp_size 4 study on 2 x 2 units was not refused"
    assert "needs 4" in message and "largest node has 2" in message and "nodes: 2, 2" in message


def test_a_study_runs_on_both_nodes_within_its_units(findings: dict[str, Any]) -> None:
    both = findings["both"]
    trials = both["trials"]
    assert both["state"] == "completed" and len(trials) == 2
    assert all(t["state"] == "completed" for t in trials)
    assert {t["node"] for t in trials} == {findings["head"], findings["worker"]}
    # Never more than the study's 4 units at once (from the trials' stored intervals).
    moments = sorted({t["start"] for t in trials})
    peak = max(sum(t["gpus"] for t in trials if t["start"] <= m < t["end"]) for m in moments)
    assert peak <= 4
    assert both["left"] == []


def test_each_node_sweeps_its_own_leftovers(findings: dict[str, Any]) -> None:
    both = findings["both"]
    started = next(e for e in both["events"] if e["kind"] == "study_started")
    swept = started["data"]["swept"]
    # Every node ran its own sweep; the orphan planted on the worker was the worker's to kill.
    assert set(swept) == {findings["head"], findings["worker"]}
    assert swept[findings["worker"]] == ["orphan-on-worker"] and swept[findings["head"]] == []
    assert both["orphan_node"] == findings["worker"] and not both["orphan_alive"]


def test_a_killed_trial_actor_takes_its_server_along(findings: dict[str, Any]) -> None:
    killed = findings["actor_kill"]
    assert killed["server_pids"], "no server ran on the worker node"
    assert killed["left_after_3s"] == []  # the guard, not a sweep at the end
    assert killed["left"] == []


def test_trials_on_a_lost_node_are_retried_elsewhere(findings: dict[str, Any]) -> None:
    loss = findings["node_loss"]
    assert loss["state"] == "completed"
    retried = [e for e in loss["events"] if e["kind"] == "trial_retried"]
    assert retried and all(e["data"]["reason"] == "node_lost" for e in retried)
    assert all(findings["worker"][:12] in e["data"]["message"] for e in retried)
    trials = loss["trials"]
    assert len(trials) == 2 and all(t["state"] == "completed" for t in trials)
    assert {t["node"] for t in trials} == {findings["head"]}  # all finished on the survivor
    assert loss["left"] == []
