"""Whole studies with the ``ome`` backend on the fake cluster: Ray Tune, genai-bench, twins.

Every InferenceService must be gone at the end, whatever happened to its trial, and trials
must never hold more GPUs than the cluster had free.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tuner import StopToken, create_study, open_store, run_study
from tuner.backends import _ome  # noqa: F401  (registers backend.kind "ome")
from tuner.spec import StudySpec
from tuner.store import StudyState, TrialState

from .conftest import NAMESPACE
from .fake_k8s import FakeCluster

pytestmark = pytest.mark.slow

# Stands in for an engine that fails: tp_size 2 never answers /health, tp_size 1 runs out of
# memory, as SGLang would print it. The trial's flags arrive as argv (runner.args).
_FAILING_ENGINE = """
import sys, time
if sys.argv[sys.argv.index("--tp-size") + 1] == "2":
    time.sleep(600)
print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
sys.exit(1)
"""


def study_spec(make: Callable[..., StudySpec], space: dict[str, Any], **backend: Any
               ) -> StudySpec:
    import twin

    spec = make(space, **backend)
    return StudySpec.model_validate({
        **spec.model_dump(mode="json"),
        "model": {"name": spec.model.name, "tokenizer": str(twin.BUNDLED_TOKENIZER)},
        "objective": {"slo": {"ttft_p99_ms": 100_000, "tpot_p99_ms": 10_000}},
        # No confirmation re-runs: they would double the time and test nothing more here.
        "search": {"algorithm": "grid", "confirm": {"top_k": 0}},
        "trial_timeout_s": 300,
    })


def assert_nothing_left(cluster: FakeCluster) -> None:
    def engines() -> list[str]:
        return [name for (_, name), pod in cluster.pods.items()
                if "ome.io/inferenceservice" in pod["metadata"]["labels"]]

    deadline = time.monotonic() + 10  # the last pod may still be Terminating
    while engines() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cluster.list("inferenceservices") == []
    assert engines() == [] and cluster.processes() == []
    assert cluster.pruned == [] and cluster.rejected == []


def test_trials_stay_within_the_free_gpus_and_every_isvc_goes(
    twin_server: None, ray_pool: int, cluster: FakeCluster, ome_spec: Callable[..., StudySpec],
    tmp_path: Path,
) -> None:
    cluster.add_pod("team-a", "training", node="gpu-1", gpus=2)  # 2 of the 4 GPUs are free
    spec = study_spec(ome_spec, {"tp_size": [1, 2]})
    result = run_study(spec, store=open_store(tmp_path / "s.db"), workdir=tmp_path / "w")
    assert result.study.state == StudyState.COMPLETED
    assert sorted(t.params["tp_size"] for t in result.trials) == [1, 2]
    assert all(t.state == TrialState.COMPLETED and t.levels for t in result.trials), [
        (t.state, t.reason) for t in result.trials]
    # A 1-GPU and a 2-GPU trial never ran together: only 2 GPUs were free.
    first, second = sorted(result.trials, key=lambda t: t.started_at or 0)
    assert first.ended_at is not None and second.started_at is not None
    assert first.ended_at <= second.started_at
    assert cluster.max_gpus_in_use <= 4  # the other tenant's 2 plus at most 2 of ours
    assert result.best is not None
    assert_nothing_left(cluster)


def test_failed_trials_carry_the_reason_and_leave_nothing(
    ray_pool: int, cluster: FakeCluster, ome_spec: Callable[..., StudySpec],
    sample: Callable[[str], dict[str, Any]], tmp_path: Path,
) -> None:
    runtime = sample("runtimes/qwen3-8b-rt.yaml")
    runtime["metadata"]["name"] = "srt-failing"
    runtime["spec"]["engineConfig"]["runner"]["command"] = ["python3", "-c", _FAILING_ENGINE]
    cluster.apply(runtime)
    spec = study_spec(ome_spec, {"tp_size": [1, 2]}, runtime="srt-failing",
                      startup_timeout_s=3)
    result = run_study(spec, store=open_store(tmp_path / "s.db"), workdir=tmp_path / "w")
    trials = {t.params["tp_size"]: t for t in result.trials}
    assert {t.state for t in trials.values()} == {TrialState.FAILED}
    assert trials[1].reason == "oom" and "CUDA out of memory" in (trials[1].message or "")
    # From OME's lastFailureInfo or the pod's status, whichever the poll saw first.
    assert "code 1" in (trials[1].message or "")
    assert trials[2].reason == "timeout" and "not Ready after 3 s" in (trials[2].message or "")
    assert result.best is None
    assert_nothing_left(cluster)


def test_a_stopped_study_deletes_its_isvcs(
    twin_server: None, ray_pool: int, cluster: FakeCluster, ome_spec: Callable[..., StudySpec],
    tmp_path: Path,
) -> None:
    spec = study_spec(ome_spec, {"tp_size": [1, 2]})
    store = open_store(tmp_path / "s.db")
    study_id = create_study(spec, store=store).study_id
    outcome: dict[str, Any] = {}
    stop = StopToken()
    thread = threading.Thread(target=lambda: outcome.update(result=run_study(
        spec, store=store, study_id=study_id, workdir=tmp_path / "w", stop=stop)))
    thread.start()
    deadline = time.monotonic() + 60
    while not any(_ready(i) for i in cluster.list("inferenceservices", NAMESPACE)):
        assert time.monotonic() < deadline, "no trial became Ready"
        time.sleep(0.1)
    stop.set()
    thread.join(timeout=120)
    assert not thread.is_alive()
    result = outcome["result"]
    assert result.study.state == StudyState.STOPPED
    assert all(t.state.is_finished() for t in result.trials)
    assert_nothing_left(cluster)


def _ready(isvc: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (isvc.get("status") or {}).get("conditions", []))
