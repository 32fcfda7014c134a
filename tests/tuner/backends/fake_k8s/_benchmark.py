"""OME's BenchmarkJob controller as the fake runs it, and the genai-bench result it leaves.

The genai-bench command is built the way OME 17b77ed builds it
(``pkg/controller/v1beta1/benchmark/utils/utils.go`` ``BuildInferenceServiceArgs``): the
``--api-backend`` is the isvc's ``predictor.model.protocolVersion``, else the value of the
first ``PROTOCOL_VERSION`` in the isvc's own ``engine.runner.env``, else ``openai``; the model
name is hard-coded ``vllm-model``. genai-bench (``user/openai_user.py``) sends ``ignore_eos``
only for the ``vllm`` and ``sglang`` backends, so with any other the result's outputs stop at
the model's EOS, shorter than the scenario asks: the result written here says so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ._objects import now
from ._schemas import Json

if TYPE_CHECKING:
    from ._cluster import FakeCluster

_RPS = 5.0
# Where a chat model's answer ends when nothing tells it to go on (made up, but short).
_EOS_TOKENS = 4


def api_backend(isvc: Json) -> str:
    """The genai-bench ``--api-backend`` OME picks for an InferenceService."""
    spec = isvc.get("spec") or {}
    version = ((spec.get("predictor") or {}).get("model") or {}).get("protocolVersion")
    if version:
        return str(version)
    for env in ((spec.get("engine") or {}).get("runner") or {}).get("env") or []:
        if env.get("name") == "PROTOCOL_VERSION":
            return str(env.get("value") or "") or "openai"  # Go: the first match, then break
    return "openai"


def reconcile(cluster: FakeCluster, namespace: str, name: str) -> None:
    """One pass of the BenchmarkJob controller over ``namespace/name``."""
    job = cluster.get("benchmarkjobs", namespace, name)
    if job is None:
        return
    if job["metadata"].get("deletionTimestamp"):
        with cluster.lock:
            cluster.objects.pop(("benchmarkjobs", namespace, name), None)
        return
    if (job.get("status") or {}).get("state") in ("Completed", "Failed"):
        return
    spec = job["spec"]
    target = spec["endpoint"]["inferenceService"]
    isvc = cluster.get("inferenceservices", target["namespace"], target["name"])
    ready = isvc is not None and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (isvc.get("status") or {}).get("conditions", []))
    if isvc is None or not ready:
        cluster.set_status("benchmarkjobs", namespace, name, {"state": "Pending"})
        return
    uri = spec["outputLocation"]["storageUri"]
    pvc, _, subpath = uri.removeprefix("pvc://").partition("/")
    root = cluster.pvcs.get((namespace, pvc))
    if not uri.startswith("pvc://") or root is None or not subpath:
        cluster.set_status("benchmarkjobs", namespace, name, {
            "state": "Failed", "failureMessage": f"PVC {pvc} not found in {namespace}"})
        return
    backend = api_backend(isvc)
    cluster.benchmark_commands[(namespace, name)] = [
        "genai-bench", "benchmark", "--api-backend", backend,
        "--api-base", str((isvc.get("status") or {}).get("url")),
        "--api-model-name", "vllm-model", "--task", spec["task"],
        *[w for s in spec.get("trafficScenarios") or [] for w in ("--traffic-scenario", s)],
        *[w for c in spec.get("numConcurrency") or [] for w in ("--num-concurrency", str(c))],
    ]
    folder = root / subpath / spec.get("resultFolderName", name)
    folder.mkdir(parents=True, exist_ok=True)
    for scenario in spec.get("trafficScenarios") or ["D(100,100)"]:
        for concurrency in spec.get("numConcurrency") or [1]:
            _write_result(folder, scenario, int(concurrency),
                          int(spec["maxRequestsPerIteration"]),
                          ignore_eos=backend.lower() in ("vllm", "sglang"))
    cluster.set_status("benchmarkjobs", namespace, name, {
        "state": "Completed", "startTime": now(), "completionTime": now()})


def _write_result(folder: Path, scenario: str, concurrency: int, requests: int, *,
                  ignore_eos: bool) -> None:
    """A genai-bench result file of the shape genai-bench writes (latencies made up)."""
    asked = re.match(r"^D\((\d+),(\d+)\)$", scenario)
    out = int(asked.group(2)) if asked else 100
    tokens = out if ignore_eos else min(out, _EOS_TOKENS)
    stats = {key: {"min": v, "max": v, "mean": v, "stddev": 0.0, "sum": v * requests,
                   "p25": v, "p50": v, "p75": v, "p90": v, "p95": v, "p99": v}
             for key, v in (("ttft", 0.2), ("tpot", 0.02), ("e2e_latency", 2.0),
                            ("num_output_tokens", float(tokens)))}
    sanitized = scenario.replace("(", "").replace(")", "").replace("/", "_").replace(",", "_")
    aggregated = {
        "scenario": scenario, "num_concurrency": concurrency, "run_duration": 60.0,
        "requests_per_second": _RPS, "mean_output_throughput_tokens_per_s": _RPS * tokens,
        "mean_input_throughput_tokens_per_s": 1000.0,
        "mean_total_tokens_throughput_tokens_per_s": 1000.0 + _RPS * tokens, "error_rate": 0.0,
        "num_error_requests": 0, "num_completed_requests": requests, "num_requests": requests,
        "stats": stats,
    }
    path = folder / f"{sanitized}_text-to-text_num_concurrency_{concurrency}_time_60s.json"
    path.write_text(json.dumps({"aggregated_metrics": aggregated,
                                "individual_request_metrics": [], "_time_unit": "s"}))
