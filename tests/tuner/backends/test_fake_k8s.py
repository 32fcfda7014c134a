"""The fake cluster itself: it must judge manifests the way a real API server with OME does."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from .conftest import NAMESPACE
from .fake_k8s import CrdSchemas, FakeCluster, expand, matches, merged_runner


@pytest.mark.parametrize("plural, relative", [
    ("clusterbasemodels", "models/Qwen3-8B.yaml"),
    ("clusterservingruntimes", "runtimes/qwen3-8b-rt.yaml"),
    ("inferenceservices", "isvc/qwen3-8b.yaml"),
    ("benchmarkjobs", "benchmark/llama3-1-70b-instruct.yaml"),
])
def test_ome_samples_are_admitted_whole(
    crds: CrdSchemas, sample: Callable[[str], dict[str, Any]], plural: str, relative: str
) -> None:
    stored, pruned, errors = crds.admit(plural, sample(relative))
    assert (errors, pruned) == ([], [])


def test_unknown_fields_are_pruned_and_reported(
    crds: CrdSchemas, sample: Callable[[str], dict[str, Any]]
) -> None:
    isvc = sample("isvc/qwen3-8b.yaml")
    isvc["spec"]["engine"]["runner"] = {"name": "ome-container", "argz": ["--tp-size", "2"]}
    isvc["spec"]["endpoints"] = [{"url": "doc-only field"}]
    isvc["metadata"]["colour"] = "blue"
    stored, pruned, errors = crds.admit("inferenceservices", isvc)
    assert errors == []
    assert sorted(pruned) == ["metadata.colour", "spec.endpoints", "spec.engine.runner.argz"]
    assert stored["spec"]["engine"]["runner"] == {"name": "ome-container"}


@pytest.mark.parametrize("change, message", [
    (lambda o: o["spec"]["engine"].update(minReplicas="one"), "spec.engine.minReplicas"),
    (lambda o: o["spec"]["model"].pop("name"), "'name' is a required property"),
    (lambda o: o["metadata"].update(labels={"gpus": 2}), "must be a string"),
    (lambda o: o["metadata"].update(name="Bad_Name"), "metadata.name"),
    (lambda o: o["spec"]["engine"].update(runner={"name": "ome-container", "resources": {
        "limits": {"nvidia.com/gpu": "two"}}}), "does not match"),
])
def test_invalid_objects_are_rejected(
    crds: CrdSchemas, sample: Callable[[str], dict[str, Any]],
    change: Callable[[dict[str, Any]], object], message: str,
) -> None:
    isvc = sample("isvc/qwen3-8b.yaml")
    change(isvc)
    _, _, errors = crds.admit("inferenceservices", isvc)
    assert any(message in e for e in errors), errors


def test_int_or_string_quantities_accept_both(
    crds: CrdSchemas, sample: Callable[[str], dict[str, Any]]
) -> None:
    isvc = sample("isvc/qwen3-8b.yaml")
    isvc["spec"]["engine"]["runner"] = {"name": "ome-container", "resources": {
        "requests": {"nvidia.com/gpu": 2, "memory": "30Gi"}, "limits": {"cpu": "500m"}}}
    assert crds.admit("inferenceservices", isvc)[1:] == ([], [])


def test_the_real_client_gets_422_and_404_over_http(
    cluster: FakeCluster, sample: Callable[[str], dict[str, Any]], tmp_path: Path
) -> None:
    api = k8s_config.new_client_from_config(str(cluster.kubeconfig(tmp_path / "kc")))
    custom = k8s.CustomObjectsApi(api)
    job = sample("benchmark/llama3-1-70b-instruct.yaml")
    job["metadata"]["namespace"] = NAMESPACE
    job["spec"]["trafficScenarios"] = ["constant_load"]  # a docs-only name the webhook rejects
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object("ome.io", "v1beta1", NAMESPACE, "benchmarkjobs",
                                               job)
    assert caught.value.status == 422 and "constant_load" in caught.value.body
    with pytest.raises(ApiException) as caught:
        custom.get_namespaced_custom_object("ome.io", "v1beta1", NAMESPACE,
                                            "inferenceservices", "nope")
    assert caught.value.status == 404
    nodes = k8s.CoreV1Api(api).list_node()
    assert [n.metadata.name for n in nodes.items] == ["gpu-1"]
    api.close()


def test_pods_are_scheduled_within_free_gpus(
    cluster: FakeCluster, sample: Callable[[str], dict[str, Any]]
) -> None:
    for name in ("a", "b"):
        isvc = sample("isvc/qwen3-8b.yaml")
        del isvc["spec"]["router"]
        isvc["metadata"].update(name=name, namespace=NAMESPACE)
        isvc["spec"]["engine"]["runner"] = {
            "name": "ome-container", "command": ["python3", "-c", "import time; time.sleep(30)"],
            "resources": {"requests": {"nvidia.com/gpu": "3"}, "limits": {"nvidia.com/gpu": "3"}}}
        cluster.apply(isvc)
    deadline = time.monotonic() + 10
    while not any(e["reason"] == "FailedScheduling" for e in cluster.events):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert cluster.gpus_in_use() == 3 and len(cluster.processes()) == 1
    assert "Insufficient nvidia.com/gpu" in cluster.events[-1]["message"]


def test_helpers_follow_kubernetes_rules() -> None:
    assert expand("--model-path=$(MODEL_PATH)", {"MODEL_PATH": "/m"}) == "--model-path=/m"
    assert expand("$$(MODEL_PATH) $(UNSET)", {"MODEL_PATH": "/m"}) == "$(MODEL_PATH) $(UNSET)"
    pod = {"metadata": {"labels": {"a": "1", "b": "2"}}, "status": {"phase": "Running"}}
    assert matches(pod, "a=1,b", "status.phase!=Failed")
    assert not matches(pod, "a=1,c", None)
    assert not matches(pod, None, "status.phase=Pending")
    runtime = {"spec": {"engineConfig": {"runner": {
        "name": "ome-container", "command": ["python3"],
        "resources": {"requests": {"cpu": "10", "nvidia.com/gpu": "1"}}}}}}
    isvc = {"spec": {"engine": {"runner": {"args": ["--tp-size", "2"], "resources": {
        "requests": {"nvidia.com/gpu": "2"}}}}}}
    assert merged_runner(runtime, isvc) == {
        "name": "ome-container", "command": ["python3"], "args": ["--tp-size", "2"],
        "resources": {"requests": {"cpu": "10", "nvidia.com/gpu": "2"}}}
