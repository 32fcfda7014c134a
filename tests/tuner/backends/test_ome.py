"""The ``ome`` backend: rendering against OME's real CRDs, and its lifecycle on a fake cluster."""

from __future__ import annotations

import importlib.util
import pickle
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tuner import launch_text
from tuner.backends._ome import DRY_RUN_TRIAL, OmeBackend, model_label_keys
from tuner.backends.base import Deployment, deployment_name
from tuner.bench import genai
from tuner.exceptions import BackendError, DeployTimeoutError, NotSupportedError
from tuner.export import export_manifests
from tuner.spec import StudySpec, load_spec

from .conftest import MODEL, NAMESPACE, RUNTIME, SERVED
from .fake_k8s import REPO, CrdSchemas, FakeCluster, iter_yaml

CLUSTER = REPO / "cluster"
NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

CONFIGS: list[dict[str, object]] = [
    {},
    {"tp_size": 2},
    {"tp_size": 4, "dp_size": 2, "mem_fraction_static": 0.85, "schedule_policy": "lpm"},
    {"tp_size": 1, "chunked_prefill_size": -1, "disable_radix_cache": True,
     "enable_mixed_chunk": False, "kv_cache_dtype": "fp8_e4m3", "context_length": 8192},
]


def spec_for(**backend: Any) -> StudySpec:
    """A spec that needs no cluster (rendering only)."""
    return StudySpec.model_validate({
        "name": "llama8b-chat", "model": {"name": SERVED},
        "backend": {"kind": "ome", "base_model": MODEL, "runtime": RUNTIME, **backend},
        "space": {"tp_size": [1, 2, 4], "mem_fraction_static": {"low": 0.7, "high": 0.9}},
        "fixed": {"max_running_requests": 256},
    })


def admitted(crds: CrdSchemas, plural: str, text: str) -> dict[str, Any]:
    """Admit a rendered manifest as the API server would; fail on any error or pruning."""
    body = yaml.safe_load(text)
    stored, pruned, errors = crds.admit(plural, body)
    assert errors == [], errors
    assert pruned == [], f"the API server would silently drop {pruned}"
    assert stored == body
    return body


# --- rendering ------------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("image", [None, "docker.io/lmsysorg/sglang:v0.5.5.post3-cu129-amd64"])
def test_isvc_render_passes_the_crd_with_nothing_pruned(
    crds: CrdSchemas, config: dict[str, object], image: str | None
) -> None:
    spec = spec_for(image=image)
    backend = OmeBackend(spec, study_id="llama8b-chat-20260101-0000", workdir=Path("."))
    full = spec.server_config(config)
    isvc = admitted(crds, "inferenceservices", backend.describe(full))

    gpus = spec.gpus_needed(full)
    engine = isvc["spec"]["engine"]
    runner = engine["runner"]
    assert (engine["minReplicas"], engine["maxReplicas"]) == (1, 1)
    assert "router" not in isvc["spec"] and "predictor" not in isvc["spec"]
    assert runner["name"] == "ome-container"
    # The log tail becomes the termination message (an OOM's traceback reaches the status),
    # and OME's BenchmarkJob sends genai-bench's ignore_eos (see _benchmark.py of the fake).
    assert runner["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert runner["env"] == [{"name": "PROTOCOL_VERSION", "value": "sglang"}]
    assert runner["resources"] == {"requests": {"nvidia.com/gpu": str(gpus)},
                                   "limits": {"nvidia.com/gpu": str(gpus)}}
    assert "command" not in runner
    assert all(isinstance(word, str) for word in runner["args"])
    assert runner["args"] == backend.flags(full)
    args = runner["args"]
    assert args[args.index("--tp-size") + 1] == str(full.get("tp_size", 1))
    assert args[-2:] == ["--served-model-name", SERVED]
    assert runner.get("image") == image
    assert isvc["spec"]["model"] == {"name": MODEL}
    assert isvc["spec"]["runtime"] == {"name": RUNTIME}
    assert isvc["metadata"]["annotations"]["ome.io/autoscalerClass"] == "external"
    assert isvc["metadata"]["labels"] == {"autotuner.ome.io/study": backend.study_id,
                                          "autotuner.ome.io/trial": DRY_RUN_TRIAL}


def test_describe_is_the_render_of_a_dry_run() -> None:
    spec = spec_for()
    backend = OmeBackend(spec, study_id="s1", workdir=Path("."))
    config = spec.server_config({"tp_size": 2, "mem_fraction_static": 0.8})
    assert backend.describe(config) == backend.render(config, trial_id=DRY_RUN_TRIAL)
    assert yaml.safe_load(backend.describe(config))["metadata"]["name"] == "s1-dry-run"


def test_autotuner_render_prints_the_isvc(crds: CrdSchemas) -> None:
    spec = spec_for()
    text = launch_text(spec, {"tp_size": 2})
    backend = OmeBackend(spec, study_id=spec.name, workdir=Path("."))
    assert text == backend.describe(spec.server_config({"tp_size": 2}))
    admitted(crds, "inferenceservices", text)


def test_a_flag_value_cannot_break_out_of_the_yaml(crds: CrdSchemas) -> None:
    spec = spec_for()
    backend = OmeBackend(spec, study_id="s1", workdir=Path("."))
    # Served names reach the manifest verbatim; quoting keeps YAML-special text a string.
    backend.spec = spec.model_copy(update={"model": spec.model.model_copy(
        update={"name": "org/model:v1@sha-1.0"})})
    isvc = admitted(crds, "inferenceservices", backend.describe({"tp_size": 1}))
    assert isvc["spec"]["engine"]["runner"]["args"][-1] == "org/model:v1@sha-1.0"


def test_export_without_runtime_is_the_measured_isvc(crds: CrdSchemas) -> None:
    spec = spec_for()
    backend = OmeBackend(spec, study_id="s1", workdir=Path("."))
    config = spec.server_config({"tp_size": 2, "mem_fraction_static": 0.8})
    isvc = admitted(crds, "inferenceservices",
                    backend.export(config, runtime=False))
    assert isvc["metadata"]["name"] == "llama8b-chat"
    assert isvc["spec"]["engine"]["runner"]["args"] == backend.flags(config)


def test_export_with_runtime_bakes_the_measured_argv_in(
    crds: CrdSchemas, sample: Callable[[str], dict[str, Any]]
) -> None:
    spec = spec_for(image="lmsysorg/sglang:v0.5.6")
    backend = OmeBackend(spec, study_id="s1", workdir=Path("."))
    config = spec.server_config({"tp_size": 2, "mem_fraction_static": 0.8})
    base = sample("runtimes/qwen3-8b-rt.yaml")
    text = backend.export(config, runtime=True, base_runtime=base)
    runtime_text, isvc_text = text.split("\n---\n")
    runtime = admitted(crds, "clusterservingruntimes", runtime_text)
    isvc = admitted(crds, "inferenceservices", isvc_text)

    base_runner = base["spec"]["engineConfig"]["runner"]
    runner = runtime["spec"]["engineConfig"]["runner"]
    # Exactly what the kubelet ran in the trial: the runtime's command, then the isvc's args.
    assert runner["command"] == base_runner["command"] + backend.flags(config)
    assert runner["name"] == "ome-container"
    assert runner["image"] == "lmsysorg/sglang:v0.5.6"
    assert runner["resources"]["requests"] == {**base_runner["resources"]["requests"],
                                               "nvidia.com/gpu": "2"}
    assert runner["readinessProbe"] == base_runner["readinessProbe"]
    for key in ("supportedModelFormats", "modelSizeRange", "protocolVersions", "routerConfig"):
        assert runtime["spec"][key] == base["spec"][key]
    assert runtime["metadata"]["name"] == f"{RUNTIME}-llama8b-chat"
    assert isvc["spec"]["runtime"] == {"name": runtime["metadata"]["name"]}
    assert "args" not in isvc["spec"]["engine"]["runner"]
    assert isvc["spec"]["engine"]["runner"]["resources"]["limits"] == {"nvidia.com/gpu": "2"}


def test_export_refuses_a_runtime_without_an_engine_command() -> None:
    backend = OmeBackend(spec_for(), study_id="s1", workdir=Path("."))
    legacy = {"metadata": {"name": "old"}, "spec": {"containers": [{"name": "x"}]}}
    with pytest.raises(NotSupportedError, match="engineConfig.runner.command"):
        backend.export({"tp_size": 1}, runtime=True, base_runtime=legacy)


def test_benchmark_job_render_passes_the_crd(crds: CrdSchemas) -> None:
    spec = spec_for(benchmark_job={"pvc": "bench-results", "image": "genai-bench:0.1.132"})
    backend = OmeBackend(spec, study_id="s1", workdir=Path("."))
    variables = backend.isvc_variables({"tp_size": 1}, trial_id="TrialRunner_0a1b2_00007")
    deployment = Deployment(name=variables["name"], endpoint="http://127.0.0.1:1",
                            served_model=SERVED, labels=variables["labels"])
    job = admitted(crds, "benchmarkjobs", backend.render_benchmark_job(
        deployment, scenario="N(480,240)/(300,150)", concurrency=32))
    assert NAME.match(job["metadata"]["name"]) and len(job["metadata"]["name"]) <= 63
    assert job["spec"]["endpoint"] == {"inferenceService": {"name": deployment.name,
                                                            "namespace": "autotuner"}}
    assert job["spec"]["numConcurrency"] == [32]
    assert job["spec"]["maxTimePerIteration"] == 1  # 60 s, in minutes
    assert job["spec"]["outputLocation"]["storageUri"].startswith("pvc://bench-results/")
    assert job["spec"]["resultFolderName"] == job["metadata"]["name"]


def test_benchmark_jobs_ask_genai_bench_for_the_in_process_api_backend() -> None:
    spec = spec_for(benchmark_job={"pvc": "bench-results"})
    runner = yaml.safe_load(OmeBackend(spec, study_id="s1", workdir=Path(".")).describe(
        {"tp_size": 1}))["spec"]["engine"]["runner"]
    env = {e["name"]: e["value"] for e in runner["env"]}
    argv = genai.build_argv(genai.Server("http://127.0.0.1:1", SERVED), workload=spec.workload,
                            scenario="D(64,16)", concurrency=2, tokenizer="t", out_dir=Path("o"))
    assert env["PROTOCOL_VERSION"] == argv[argv.index("--api-backend") + 1]
    # The installed genai-bench sends ignore_eos only for these backends (read, never
    # imported here: importing genai_bench monkey-patches the interpreter with gevent).
    package = importlib.util.find_spec("genai_bench")
    assert package is not None and package.submodule_search_locations
    source = (Path(package.submodule_search_locations[0]) / "user" / "openai_user.py").read_text()
    assert 'if self.api_backend in ["vllm", "sglang"]:' in source
    assert env["PROTOCOL_VERSION"] in ("vllm", "sglang")


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("study_id, trial_id", [
    ("llama8b-chat", "0"),
    ("a" * 40 + "-20260101-120000", "TrialRunner_3f2a1_00001"),
    # Study ids are "<spec name>-<hex>" and a spec name may start with a digit.
    ("9b-chat-0a1b2c", "t-1"),
    ("x", "trial__with__underscores_" + "9" * 40),
    ("UPPER_case_Study", "Trial.1"),
])
def test_deployment_names_and_labels_are_valid(study_id: str, trial_id: str) -> None:
    backend = OmeBackend(spec_for(), study_id=study_id, workdir=Path("."))
    variables = backend.isvc_variables({"tp_size": 1}, trial_id=trial_id)
    name = variables["name"]
    assert name == deployment_name(study_id, trial_id)
    assert NAME.match(name) and len(name) <= 63, name
    for value in variables["labels"].values():
        assert LABEL_VALUE.match(value) and len(value) <= 63, value


def test_model_label_keys_follow_ome() -> None:
    assert model_label_keys("qwen3-8b", "tune") == (
        "models.ome.io/clusterbasemodel.qwen3-8b", "models.ome.io/tune.basemodel.qwen3-8b")
    cluster, namespaced = model_label_keys("m" * 40, "a-long-namespace-name")
    for key in (cluster, namespaced):
        assert len(key.split("/", 1)[1]) <= 49
    assert cluster.endswith("-" + "m" * 23)  # 8 hex of sha256, a dash, the name's tail


# --- capacity -------------------------------------------------------------------------------


def test_gpu_capacity_counts_free_gpus_on_nodes_that_hold_the_model(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec]
) -> None:
    cluster.add_node("gpu-2", gpus=8, models=(MODEL,))
    cluster.add_node("no-model", gpus=8)
    cluster.add_node("cordoned", gpus=8, models=(MODEL,), unschedulable=True)
    cluster.add_node("not-ready", gpus=8, models=(MODEL,), ready=False)
    cluster.add_pod("team-a", "training", node="gpu-2", gpus=3)
    cluster.add_pod("team-a", "done", node="gpu-2", gpus=2, phase="Succeeded")
    cluster.add_pod("team-b", "elsewhere", node="no-model", gpus=8)
    backend = OmeBackend(ome_spec(), study_id="cap", workdir=Path("."))
    assert backend.gpu_capacity() == 4 + (8 - 3)
    capped = OmeBackend(ome_spec(gpus=2), study_id="cap", workdir=Path("."))
    assert capped.gpu_capacity() == 2


def test_gpu_capacity_without_a_free_gpu_says_why(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec]
) -> None:
    cluster.add_pod("team-a", "hog", node="gpu-1", gpus=4)
    backend = OmeBackend(ome_spec(), study_id="cap", workdir=Path("."))
    with pytest.raises(BackendError, match=r"clusterbasemodel\.qwen3-8b=Ready.*gpu-1': 0"):
        backend.gpu_capacity()


# --- lifecycle on the fake cluster ----------------------------------------------------------


def test_deploy_sends_exactly_the_render_and_nothing_is_pruned(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec]
) -> None:
    spec = ome_spec()
    backend = OmeBackend(spec, study_id="s1", workdir=Path("."))
    config = spec.server_config({"tp_size": 2})
    deployment = backend.deploy(config, trial_id="t1")
    try:
        assert cluster.created[-1] == yaml.safe_load(backend.render(config, trial_id="t1"))
        assert cluster.pruned == [] and cluster.rejected == []
        assert deployment.name == "s1-t1"
        assert deployment.labels == {"autotuner.ome.io/study": "s1",
                                     "autotuner.ome.io/trial": "t1"}
        assert deployment.served_model == SERVED
        assert deployment.endpoint.startswith("http://127.0.0.1:")
    finally:
        backend.teardown(deployment.name)


def test_a_model_that_never_becomes_ready_times_out_with_the_events(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec],
    sample: Callable[[str], dict[str, Any]],
) -> None:
    model = sample("models/Qwen3-8B.yaml")
    model["metadata"]["name"] = "nowhere"  # no node carries its Ready label
    cluster.apply(model)
    spec = ome_spec(base_model="nowhere")
    backend = OmeBackend(spec, study_id="s1", workdir=Path("."))
    deployment = backend.deploy({"tp_size": 1}, trial_id="pending")
    start = time.monotonic()
    with pytest.raises(DeployTimeoutError) as caught:
        backend.wait_ready(deployment, timeout_s=1.5)
    assert time.monotonic() - start < 5
    assert caught.value.reason == "timeout"
    assert "FailedScheduling" in str(caught.value)
    assert "didn't match Pod's node affinity/selector" in str(caught.value)
    backend.teardown(deployment.name)


def test_a_missing_model_fails_fast_with_last_failure_info(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec]
) -> None:
    backend = OmeBackend(ome_spec(base_model="no-such-model"), study_id="s1", workdir=Path("."))
    deployment = backend.deploy({"tp_size": 1}, trial_id="missing")
    with pytest.raises(BackendError) as caught:
        backend.wait_ready(deployment, timeout_s=30)
    assert not isinstance(caught.value, DeployTimeoutError)
    assert caught.value.reason == "startup"
    assert "BaseModelNotFound: model no-such-model not found" in str(caught.value)
    backend.teardown(deployment.name)


def test_a_server_that_dies_fails_with_its_reason(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec],
    sample: Callable[[str], dict[str, Any]],
) -> None:
    runtime = sample("runtimes/qwen3-8b-rt.yaml")
    runtime["metadata"]["name"] = "srt-crashing"
    runtime["spec"]["engineConfig"]["runner"]["command"] = [
        "python3", "-c",
        "import sys; print('torch.OutOfMemoryError: CUDA out of memory'); sys.exit(1)",
    ]
    cluster.apply(runtime)
    backend = OmeBackend(ome_spec(runtime="srt-crashing"), study_id="s1", workdir=Path("."))
    deployment = backend.deploy({"tp_size": 2}, trial_id="oom")
    with pytest.raises(BackendError) as caught:
        backend.wait_ready(deployment, timeout_s=30)
    assert caught.value.reason == "oom"
    message = str(caught.value)
    # From OME's lastFailureInfo or the pod's status, whichever the poll saw first.
    assert "code 1" in message and "CUDA out of memory" in message
    assert "kubectl logs -n autotuner -l ome.io/inferenceservice=s1-oom" in message
    backend.teardown(deployment.name)


def test_teardown_waits_for_the_pods_and_is_idempotent(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec]
) -> None:
    cluster.pod_grace_s = 1.0
    backend = OmeBackend(ome_spec(), study_id="s1", workdir=Path("."))
    deployment = backend.deploy({"tp_size": 2}, trial_id="t1")
    deadline = time.monotonic() + 10
    while cluster.gpus_in_use() != 2:
        assert time.monotonic() < deadline, "the fake never scheduled the pod"
        time.sleep(0.05)
    start = time.monotonic()
    backend.teardown(deployment.name)
    assert time.monotonic() - start >= 0.9  # the pod was Terminating that long
    assert cluster.gpus_in_use() == 0 and not cluster.pods
    assert cluster.get("inferenceservices", NAMESPACE, deployment.name) is None
    backend.teardown(deployment.name)
    backend.teardown("never-deployed")
    OmeBackend(ome_spec(), study_id="s1", workdir=Path(".")).teardown(deployment.name)


def test_teardown_times_out_when_the_pods_stay(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec]
) -> None:
    cluster.add_pod(NAMESPACE, "stuck-engine-abcde", node="gpu-1", gpus=1,
                    labels={"ome.io/inferenceservice": "s1-stuck"})
    backend = OmeBackend(ome_spec(teardown_timeout_s=0.5), study_id="s1", workdir=Path("."))
    with pytest.raises(BackendError, match="stuck-engine-abcde still existed"):
        backend.teardown("s1-stuck")


def test_sweep_removes_what_a_killed_driver_left(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec]
) -> None:
    first = OmeBackend(ome_spec(), study_id="s1", workdir=Path("."))
    names = {first.deploy({"tp_size": 1}, trial_id=t).name for t in ("a", "b")}
    other = OmeBackend(ome_spec(), study_id="s2", workdir=Path("."))
    kept = other.deploy({"tp_size": 1}, trial_id="a").name
    fresh = pickle.loads(pickle.dumps(first))  # a new driver knows only the ids
    assert set(fresh.sweep()) == names
    assert [o["metadata"]["name"] for o in cluster.list("inferenceservices")] == [kept]
    other.teardown(kept)


def test_a_retried_trial_recreates_instead_of_patching(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec]
) -> None:
    backend = OmeBackend(ome_spec(), study_id="s1", workdir=Path("."))
    first = backend.deploy({"tp_size": 1}, trial_id="t1")
    uid = cluster.get("inferenceservices", NAMESPACE, first.name)["metadata"]["uid"]
    second = backend.deploy({"tp_size": 2}, trial_id="t1")
    isvc = cluster.get("inferenceservices", NAMESPACE, second.name)
    assert isvc["metadata"]["uid"] != uid
    assert isvc["spec"]["engine"]["runner"]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    backend.teardown(second.name)


def test_api_errors_name_the_action_and_the_next_step(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec]
) -> None:
    backend = OmeBackend(ome_spec(namespace="missing"), study_id="s1", workdir=Path("."))
    with pytest.raises(BackendError, match=r"create InferenceService missing/s1-t1 .*HTTP 404"
                                           r".*namespace exists"):
        backend.deploy({"tp_size": 1}, trial_id="t1")
    broken = OmeBackend(ome_spec(kubeconfig="/nonexistent/kubeconfig"), study_id="s1",
                        workdir=Path("."))
    with pytest.raises(BackendError, match="cannot load Kubernetes credentials"):
        broken.gpu_capacity()


@pytest.mark.parametrize("port_forward", [None, True])
def test_end_to_end_deploy_wait_probe_teardown(
    twin_server: None, cluster: FakeCluster, ome_spec: Callable[..., StudySpec],
    port_forward: bool | None,
) -> None:
    spec = ome_spec(port_forward=port_forward)
    backend = OmeBackend(spec, study_id="e2e", workdir=Path("."))
    config = spec.server_config({"tp_size": 2})
    deployment = backend.deploy(config, trial_id="t1")
    try:
        backend.wait_ready(deployment, timeout_s=60)
        assert genai.probe(deployment.endpoint) is None
        assert backend.alive(deployment) is None
        models = httpx.get(f"{deployment.endpoint}/v1/models", timeout=10).json()
        assert SERVED in [m["id"] for m in models["data"]]
        (process,) = cluster.processes()
        assert "--tp-size" in process.args and "twin.launch_server" in process.args
        assert cluster.gpus_in_use() == 2
        assert pickle.loads(pickle.dumps(backend)).describe(config) == backend.describe(config)
    finally:
        backend.teardown(deployment.name)
    assert process.poll() is not None
    assert cluster.gpus_in_use() == 0 and cluster.processes() == []
    assert genai.probe(deployment.endpoint, timeout_s=2) is not None
    assert cluster.pruned == [] and cluster.rejected == []


def test_in_cluster_the_endpoint_is_the_isvc_service(
    twin_server: None, cluster: FakeCluster, ome_spec: Callable[..., StudySpec]
) -> None:
    backend = OmeBackend(ome_spec(in_cluster=True), study_id="in", workdir=Path("."))
    deployment = backend.deploy({"tp_size": 1}, trial_id="t1")
    try:
        assert deployment.endpoint == "http://in-t1.autotuner.svc:8080"
        # The fake's status.url is 127.0.0.1:<port>, which a pod could not use.
        with pytest.raises(BackendError, match="set backend.in_cluster: false"):
            backend.wait_ready(deployment, timeout_s=60)
    finally:
        backend.teardown(deployment.name)


def test_benchmark_job_mode_reads_the_result_from_the_pvc(
    twin_server: None, cluster: FakeCluster, ome_spec: Callable[..., StudySpec], tmp_path: Path
) -> None:
    results = tmp_path / "pvc"
    cluster.add_pvc(NAMESPACE, "bench-results", results)
    spec = ome_spec(benchmark_job={"pvc": "bench-results", "mount_path": str(results)})
    backend = OmeBackend(spec, study_id="bj", workdir=Path("."))
    deployment = backend.deploy(spec.server_config({"tp_size": 1}), trial_id="t1")
    try:
        backend.wait_ready(deployment, timeout_s=60)
        level = backend.measure(deployment, scenario="D(64,16)", concurrency=2,
                                out_dir=tmp_path / "out")
        assert (level.scenario, level.concurrency) == ("D(64,16)", 2)
        assert level.ttft_p99_ms == pytest.approx(200.0)
        # OME runs genai-bench with the isvc's PROTOCOL_VERSION as --api-backend (else
        # openai, which drops ignore_eos): every output ran to 16 tokens, as in-process.
        (command,) = cluster.benchmark_commands.values()
        assert command[command.index("--api-backend") + 1] == "sglang"
        assert level.output_throughput == 5.0 * 16
        jobs = cluster.list("benchmarkjobs")  # deleted after reading (finalizer pending)
        assert all(job["metadata"].get("deletionTimestamp") for job in jobs)
    finally:
        backend.teardown(deployment.name)
    assert cluster.pruned == [] and cluster.rejected == []



# --- export and the cluster/ manifests ------------------------------------------------------


def test_export_reads_the_base_runtime_from_the_cluster(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec], crds: CrdSchemas
) -> None:
    spec = ome_spec()
    text = export_manifests(spec, {"tp_size": 2}, runtime=True, study_id="s-1")
    runtime = admitted(crds, "clusterservingruntimes", text.split("\n---\n")[0])
    command = runtime["spec"]["engineConfig"]["runner"]["command"]
    assert command[:3] == ["python3", "-m", "sglang.launch_server"]
    assert command[-4:] == ["--tp-size", "2", "--served-model-name", SERVED]
    assert runtime["metadata"]["labels"] == {"autotuner.ome.io/study": "s-1"}


def test_export_needs_the_ome_backend() -> None:
    spec = StudySpec.model_validate({"name": "t", "model": {"name": "Qwen3-8B"},
                                     "space": {"tp_size": [1]}})
    with pytest.raises(NotSupportedError, match="launch command"):
        export_manifests(spec, {"tp_size": 1}, runtime=False)


def test_cluster_manifests_are_valid(crds: CrdSchemas) -> None:
    docs = [(path, doc) for path in sorted(CLUSTER.rglob("*.yaml"))
            if path.name not in ("kustomization.yaml", "study.yaml")
            for doc in iter_yaml(path)]
    kinds = {doc["kind"] for _, doc in docs}
    assert {"Namespace", "ServiceAccount", "Role", "ClusterRole", "RayCluster", "Service",
            "ClusterBaseModel", "ClusterServingRuntime"} <= kinds
    plurals = {kind: plural for plural, (kind, _, _) in crds.kinds.items()}
    for path, doc in docs:
        if doc["apiVersion"] == "ome.io/v1beta1":
            admitted(crds, plurals[doc["kind"]], yaml.safe_dump(doc))
        if doc["kind"] == "RayCluster":
            groups = [doc["spec"]["headGroupSpec"], *doc["spec"]["workerGroupSpecs"]]
            assert all(g["template"]["spec"]["serviceAccountName"] == "autotuner"
                       for g in groups), path
    listed = yaml.safe_load((CLUSTER / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in CLUSTER.glob("*.yaml")
                                    if p.name != "kustomization.yaml")


def test_rbac_grants_what_the_backend_calls(
    twin_server: None, cluster: FakeCluster, ome_spec: Callable[..., StudySpec], tmp_path: Path
) -> None:
    rules = [rule for doc in iter_yaml(CLUSTER / "rbac.yaml") if doc["kind"].endswith("Role")
             for rule in doc["rules"]]

    def allowed(group: str, resource: str, verb: str) -> bool:
        return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
                   for r in rules)

    # Every kind of call the backend makes from a pod: capacity, export with the runtime, a
    # retried deploy, a ready trial measured by a BenchmarkJob, teardown and sweep.
    cluster.add_pvc(NAMESPACE, "bench-results", tmp_path / "pvc")
    spec = ome_spec(port_forward=False, benchmark_job={"pvc": "bench-results",
                                                       "mount_path": str(tmp_path / "pvc")})
    backend = OmeBackend(spec, study_id="rbac", workdir=Path("."))
    config = spec.server_config({"tp_size": 1})
    backend.gpu_capacity()
    backend.export(config, runtime=True)
    backend.deploy(config, trial_id="t1")
    deployment = backend.deploy(config, trial_id="t1")
    try:
        backend.wait_ready(deployment, timeout_s=60)
        assert backend.exited(deployment) is None
        backend.measure(deployment, scenario="D(64,16)", concurrency=2, out_dir=tmp_path / "out")
    finally:
        backend.teardown(deployment.name)
    backend.sweep()

    seen = set(cluster.requests)
    assert {("ome.io", "inferenceservices", "create"), ("ome.io", "benchmarkjobs", "create"),
            ("", "nodes", "list"), ("", "events", "list")} <= seen
    missing = sorted(request for request in seen if not allowed(*request))
    assert missing == [], f"cluster/rbac.yaml does not grant {missing}"
    assert not allowed("ome.io", "inferenceservices", "patch")
    assert not allowed("", "pods/portforward", "create")


def test_import_tuner_leaves_the_kubernetes_client_unloaded() -> None:
    code = "import tuner, sys; assert 'kubernetes' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_the_try_it_study_loads() -> None:
    spec = load_spec(CLUSTER / "try" / "study.yaml")
    runtime = next(iter_yaml(CLUSTER / "try" / "twin-runtime.yaml"))
    model = next(iter_yaml(CLUSTER / "try" / "model.yaml"))
    assert spec.backend.kind == "ome"
    assert (spec.backend.runtime, spec.backend.base_model) == (
        runtime["metadata"]["name"], model["metadata"]["name"])
