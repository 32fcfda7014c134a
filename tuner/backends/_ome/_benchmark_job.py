"""BenchmarkJob mode: one OME BenchmarkJob per level, its result read back from the PVC."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from tuner.backends._ome import _render
from tuner.backends._ome._poll import Poll
from tuner.bench.metrics import LevelMetrics
from tuner.exceptions import BackendError, BenchmarkError

if TYPE_CHECKING:
    from tuner.backends._ome._kube import Kube
    from tuner.backends.base import Deployment
    from tuner.spec import StudySpec

__all__ = ["measure"]


def measure(
    kube: Kube,
    spec: StudySpec,
    study_id: str,
    deployment: Deployment,
    *,
    scenario: str,
    concurrency: int,
) -> LevelMetrics:
    """Measure one level with a BenchmarkJob that writes to ``backend.benchmark_job.pvc``.

    This process must see that PVC at ``mount_path``. OME runs genai-bench with the isvc's
    ``PROTOCOL_VERSION`` env as ``--api-backend``; the isvc sets ``sglang``, so requests carry
    ``ignore_eos`` and ``D(in,out)`` outputs run to ``out`` tokens, as in-process. Limits of
    OME's BenchmarkJob (v0.1.5): it sends ``model: vllm-model`` (SGLang serves it anyway),
    tokenizes with the model's files on the node, counts time in whole minutes, and starts a
    new pod per level; a genai-bench image older than ``sglang`` as an ``--api-backend`` choice
    (genai-bench 2025-06-30) rejects the flag and the job fails.

    Raises:
        BenchmarkError: the job failed, timed out or left no result.
        SpecError: ``backend.benchmark_job`` is not set.
    """
    variables = _render.benchmark_job_variables(
        spec, study_id, deployment, scenario=scenario, concurrency=concurrency
    )
    job = _render.ome_spec(spec).benchmark_job
    assert job is not None  # benchmark_job_variables checked it
    name, namespace = variables["name"], variables["namespace"]
    body = yaml.safe_load(_render.render("benchmark_job.yaml.j2", variables))
    results_dir = Path(job.mount_path) / _render.results_subpath(study_id) / variables["folder"]
    shutil.rmtree(results_dir, ignore_errors=True)  # a rerun must not read an old result
    try:
        kube.delete("benchmarkjobs", name)  # a BenchmarkJob runs once: recreate to rerun
        kube.wait_gone("benchmarkjobs", name)
        kube.create("benchmarkjobs", "BenchmarkJob", body)
        try:
            _wait(kube, name, variables["max_minutes"] * 60 + job.timeout_s)
        finally:
            kube.delete("benchmarkjobs", name)
    except BackendError as e:
        raise BenchmarkError(str(e)) from e
    results = sorted(results_dir.glob(f"*_num_concurrency_{concurrency}_time_*s.json"))
    if not results:
        raise BenchmarkError(
            f"BenchmarkJob {namespace}/{name} completed but left no result in "
            f"{results_dir}; check that {job.mount_path} mounts PVC {job.pvc} here, and "
            f"see `kubectl logs -n {namespace} -l job-name={name}`"
        )
    data = json.loads(results[-1].read_text())
    return LevelMetrics.from_genai_bench(
        data["aggregated_metrics"],
        time_unit=data.get("_time_unit", "s"),
        time_scale=deployment.time_scale,
    )


def _wait(kube: Kube, name: str, timeout_s: float) -> None:
    """Wait for the BenchmarkJob to complete.

    Raises:
        BenchmarkError: it failed, vanished or timed out.
    """
    namespace = kube.namespace
    poll = Poll(timeout_s)
    while True:
        job = kube.read("benchmarkjobs", name, action=f"read BenchmarkJob {namespace}/{name}")
        if job is None:
            raise BenchmarkError(
                f"BenchmarkJob {namespace}/{name} was deleted before it completed; was the "
                "study stopped?"
            )
        status = job.get("status") or {}
        state = str(status.get("state") or "Pending")
        if state == "Completed":
            return
        if state == "Failed":
            raise BenchmarkError(
                f"BenchmarkJob {namespace}/{name} failed: "
                f"{status.get('failureMessage') or 'no message'}; see `kubectl logs -n "
                f"{namespace} -l job-name={name}`"
            )
        if poll.expired:
            raise BenchmarkError(
                f"BenchmarkJob {namespace}/{name} was still {state} after {timeout_s:g} s; "
                f"see `kubectl describe benchmarkjob -n {namespace} {name}` or raise "
                "backend.benchmark_job.timeout_s"
            )
        poll.sleep()
