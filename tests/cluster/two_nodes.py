"""A two-node Ray cluster (``ray.cluster_utils.Cluster``, 2 units per node) put through the
multi-node scenarios; prints one JSON object of findings for ``test_two_nodes.py``.

Run in its own process: a test session already has a local Ray, and a process has one.
Scenarios, in order: a config that fits no node is refused; a 4-unit study runs on both
nodes, its worker-node orphan swept by the worker node's own sweep; a trial actor SIGKILLed
on the worker node leaves no server; the worker node lost mid-study.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import ray
from ray.cluster_utils import Cluster

from tuner import StopToken, create_study, init_ray, open_store, run_study
from tuner.exceptions import NotSupportedError
from tuner.spec import spec_from_dict

UNITS = {"autotuner_gpu": 2}
# Two trials of 2 units each: with 2 units per node, one runs on each node at once.
SPACE = {"tp_size": [2], "schedule_policy": ["fcfs", "lpm"]}


def spec(name: str, space: dict[str, Any], requests: int = 8) -> Any:
    return spec_from_dict({
        "name": name,
        "model": {"name": "Llama-3.2-1B-Instruct"},
        "backend": {"kind": "twin", "gpus": 4, "time_scale": 20, "startup_timeout_s": 60},
        "space": space,
        "workload": {"scenarios": ["D(64,32)"], "concurrency": [2],
                     "max_requests_per_level": requests, "max_seconds_per_level": 60},
        "objective": {"slo": {"tpot_p99_ms": 1000, "ttft_p99_ms": 10000}},
        "search": {"algorithm": "grid", "prescreen": None, "confirm": {"top_k": 0},
                   "early_stopping": False},
        "trial_timeout_s": 240,
    })


def servers(study_id: str) -> list[dict[str, Any]]:
    """Live server processes of a study (and their guards), from their tags."""
    found = []
    for process in psutil.process_iter():
        try:
            env = process.environ()
            if env.get("AUTOTUNER_STUDY") == study_id and process.status() != "zombie":
                found.append({"pid": process.pid, "node": env.get("AUTOTUNER_NODE")})
        except (psutil.Error, OSError):
            continue
    return found


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise TimeoutError(what)


@ray.remote(num_cpus=0)
def plant_orphan(study_id: str, workdir: str) -> tuple[str, int]:
    """A server of the study left on this node as a dead driver would leave it: tagged,
    recorded, with no guard and no owner."""
    node = ray.get_runtime_context().get_node_id()
    name = "orphan-on-worker"
    env = {**os.environ, "AUTOTUNER_STUDY": study_id, "AUTOTUNER_DEPLOYMENT": name,
           "AUTOTUNER_NODE": node}
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                               env=env, start_new_session=True)
    servers_dir = Path(workdir) / "servers"
    servers_dir.mkdir(parents=True, exist_ok=True)
    (servers_dir / f"{name}.json").write_text(json.dumps(
        {"pid": process.pid, "owner": 1, "node": node, "argv": []}))
    return node, process.pid


def run_in_thread(*args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["result"] = run_study(*args, **kwargs)
        except Exception as e:  # reported, not raised: the script must print its findings
            out["error"] = f"{type(e).__name__}: {e}"

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


def trials(store: Any, study_id: str) -> list[dict[str, Any]]:
    return [{"id": t.trial_id, "state": t.state.value, "reason": t.reason and t.reason.value,
             "node": t.node_id, "gpus": t.gpus, "start": t.started_at, "end": t.ended_at}
            for t in store.list_trials(study_id)]


def events(store: Any, study_id: str) -> list[dict[str, Any]]:
    return [{"kind": e.kind.value, "trial": e.trial_id, "data": e.data}
            for e in store.events(study_id)]


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="two-nodes-"))
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 2, "resources": UNITS})
    worker = cluster.add_node(num_cpus=2, resources=UNITS)
    cluster.wait_for_nodes()
    init_ray(gpus=0, address=cluster.address)
    head_id = ray.get_runtime_context().get_node_id()
    worker_id = worker.node_id
    store = open_store(home / "s.db")
    out: dict[str, Any] = {"head": head_id, "worker": worker_id}

    # 0. The documented check before a study: `autotuner cluster-check SPEC --ray-address`.
    spec_file = home / "check.json"
    spec_file.write_text(json.dumps(spec("check", SPACE).model_dump(mode="json")))
    too_big = home / "too-big.json"
    too_big.write_text(json.dumps(spec("too-big", {"tp_size": [2, 4]}).model_dump(mode="json")))
    out["check"] = [subprocess.run(
        [sys.executable, "-m", "tuner.cli", "cluster-check", str(path), "--ray-address",
         cluster.address, "--json"], capture_output=True, text=True, timeout=300)
        for path in (spec_file, too_big)]
    out["check"] = [{"code": done.returncode, "report": json.loads(done.stdout or "null"),
                     "stderr": done.stderr[-2000:]} for done in out["check"]]

    # 1. A config needing 4 units on one node, where each node has 2: refused up front.
    try:
        run_study(spec("too-big", {"tp_size": [2, 4]}), store=store)
        out["infeasible"] = None
    except NotSupportedError as e:
        out["infeasible"] = str(e)

    # 2. Both nodes used; an orphan on the worker swept by the worker's own sweep.
    study = spec("both-nodes", SPACE)
    study_id = create_study(study, store=store).study_id
    workdir = home / "studies" / study_id
    orphan_node, orphan_pid = ray.get(plant_orphan.options(
        scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
            worker_id, soft=False)).remote(study_id, str(workdir)))
    result = run_study(study, store=store, study_id=study_id)
    out["both"] = {"state": result.study.state.value, "trials": trials(store, study_id),
                   "events": events(store, study_id), "orphan_node": orphan_node,
                   "orphan_alive": psutil.pid_exists(orphan_pid)
                   and psutil.Process(orphan_pid).status() != "zombie",
                   "left": servers(study_id)}

    # 3. A trial actor SIGKILLed on the worker node: its server goes with it.
    study = spec("actor-kill", SPACE, requests=400)
    study_id = create_study(study, store=store).study_id
    stop = StopToken()
    thread, done = run_in_thread(study, store=store, study_id=study_id, stop=stop)
    on_worker = wait_for(lambda: [s for s in servers(study_id) if s["node"] == worker_id],
                         120, "no server on the worker node")
    owner = psutil.Process(on_worker[0]["pid"])
    while owner.parent() is not None and "AUTOTUNER_STUDY" in owner.parent().environ():
        owner = owner.parent()  # from the server up to its guard
    actor = owner.parent()
    assert actor is not None
    killed = {"actor": actor.pid, "server_pids": [s["pid"] for s in on_worker]}
    os.kill(actor.pid, signal.SIGKILL)
    time.sleep(3)
    killed["left_after_3s"] = [s for s in servers(study_id) if s["pid"] in killed["server_pids"]]
    stop.set()
    thread.join(300)
    killed["left"] = servers(study_id)
    out["actor_kill"] = killed

    # 4. The worker node lost mid-study: its trials are lost with it and retried elsewhere.
    study = spec("node-loss", SPACE, requests=60)
    study_id = create_study(study, store=store).study_id
    thread, done = run_in_thread(study, store=store, study_id=study_id)
    wait_for(lambda: [s for s in servers(study_id) if s["node"] == worker_id], 120,
             "no server on the worker node")
    time.sleep(1)
    cluster.remove_node(worker, allow_graceful=False)
    thread.join(400)
    out["node_loss"] = {"state": done["result"].study.state.value if "result" in done
                        else done.get("error"),
                        "trials": trials(store, study_id), "events": events(store, study_id),
                        "left": servers(study_id)}
    print(json.dumps(out))
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main()
