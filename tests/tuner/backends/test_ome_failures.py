"""How the ``ome`` backend tells trial failures apart on the fake cluster: a CUDA OOM that only
the log tail names, a start-up cut short by the runtime's startup probe, and flags that OME
rewrote before the server ran."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tuner.backends._ome import OmeBackend, _argv
from tuner.exceptions import BackendError, DeployTimeoutError
from tuner.spec import StudySpec

from .conftest import NAMESPACE
from .fake_k8s import FakeCluster
from .sglang_logs import TORCH_OOM, scheduler_death_log

Sample = Callable[[str], dict[str, Any]]


def _runtime(cluster: FakeCluster, sample: Sample, name: str, **runner: Any) -> dict[str, Any]:
    """The sample SGLang runtime renamed to ``name``, with runner fields replaced."""
    runtime = sample("runtimes/qwen3-8b-rt.yaml")
    runtime["metadata"]["name"] = name
    runtime["spec"]["engineConfig"]["runner"].update(runner)
    cluster.apply(runtime)
    return runtime


def _dying_engine(log: str) -> list[str]:
    """A container command that prints ``log`` and SIGKILLs itself, as SGLang's launcher does
    after a scheduler's SIGQUIT."""
    script = (f"import os, signal, sys; sys.stdout.write({log!r}); sys.stdout.flush(); "
              "os.kill(os.getpid(), signal.SIGKILL)")
    return ["python3", "-c", script]


def _pod(cluster: FakeCluster, isvc: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        with cluster.lock:
            pods = [p for p in cluster.pods.values()
                    if p["metadata"]["labels"].get("ome.io/inferenceservice") == isvc]
        if pods and (pods[0]["status"].get("containerStatuses") or [{}])[0].get("lastState"):
            return pods[0]
        assert time.monotonic() < deadline, f"no ended container for {isvc}"
        time.sleep(0.05)


def test_a_cuda_oom_is_classified_from_the_log_tail(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec], sample: Sample, sglang_wheel: Any
) -> None:
    _runtime(cluster, sample, "srt-oom", command=_dying_engine(
        scheduler_death_log(sglang_wheel)))
    backend = OmeBackend(ome_spec(runtime="srt-oom"), study_id="s1", workdir=Path("."))
    deployment = backend.deploy({"tp_size": 2}, trial_id="oom")
    try:
        with pytest.raises(BackendError) as caught:
            backend.wait_ready(deployment, timeout_s=30)
    finally:
        backend.teardown(deployment.name)
    assert caught.value.reason == "oom"
    message = str(caught.value)
    # From OME's lastFailureInfo or the pod's status, whichever the poll saw first.
    assert TORCH_OOM in message and "137" in message
    assert "child failed" not in message


def test_without_the_policy_the_kubelet_keeps_no_message(
    cluster: FakeCluster, sample: Sample, sglang_wheel: Any
) -> None:
    # What the tuner's isvc avoids: SGLang writes no termination message, so a container
    # without FallbackToLogsOnError ends 137/Error with nothing that names the OOM.
    _runtime(cluster, sample, "srt-oom", command=_dying_engine(
        scheduler_death_log(sglang_wheel)))
    isvc = sample("isvc/qwen3-8b.yaml")
    del isvc["spec"]["router"]
    isvc["metadata"].update(name="bare", namespace=NAMESPACE)
    isvc["spec"]["runtime"] = {"name": "srt-oom"}
    cluster.apply(isvc)
    ended = _pod(cluster, "bare")["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (ended["exitCode"], ended["reason"], ended["message"]) == (137, "Error", "")


def test_a_startup_probe_restart_is_a_start_up_timeout(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec], sample: Sample,
    caplog: pytest.LogCaptureFixture,
) -> None:
    probe = {"httpGet": {"path": "/health_generate", "port": 8080}, "initialDelaySeconds": 0,
             "periodSeconds": 1, "failureThreshold": 2, "timeoutSeconds": 1}
    _runtime(cluster, sample, "srt-slow", startupProbe=probe,
             command=["python3", "-c", "import time; time.sleep(600)"])
    backend = OmeBackend(ome_spec(runtime="srt-slow", startup_timeout_s=60), study_id="s1",
                         workdir=Path("."))
    with caplog.at_level(logging.WARNING, logger="tuner.backends._ome._backend"):
        backend.preflight()
    assert "0 + 2 x 1 = 2 s" in caplog.text and "(60 s)" in caplog.text
    deployment = backend.deploy({"tp_size": 1}, trial_id="slow")
    start = time.monotonic()
    try:
        with pytest.raises(DeployTimeoutError) as caught:
            backend.wait_ready(deployment, timeout_s=60)
    finally:
        backend.teardown(deployment.name)
    assert time.monotonic() - start < 30  # the restart ended the wait, not the 60 s
    assert caught.value.reason == "timeout"
    message = str(caught.value)
    assert "failed startup probe" in message and "allows 0 + 2 x 1 = 2 s" in message
    assert "startupProbe.failureThreshold" in message


@pytest.fixture
def tp_override(cluster: FakeCluster, sample: Sample) -> str:
    """A runtime whose AcceleratorClass ``h100-sxm`` forces tensor parallelism 4."""
    runtime = sample("runtimes/qwen3-8b-rt.yaml")
    runtime["metadata"]["name"] = "srt-tp4"
    runtime["spec"]["acceleratorRequirements"] = {"acceleratorClasses": ["h100-sxm"]}
    runtime["spec"]["supportedModelFormats"][0]["acceleratorConfig"] = {
        "h100-sxm": {"tensorParallelismOverride": {"tensorParallelSize": 4}}}
    runtime["spec"]["engineConfig"]["runner"]["command"] = [
        "python3", "-c", "import time; time.sleep(600)"]
    cluster.apply(runtime)
    return "srt-tp4"


def test_flags_rewritten_by_an_accelerator_class_are_refused(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec], tp_override: str
) -> None:
    # A cluster policy gives every InferenceService an AcceleratorClass; OME then applies the
    # runtime's tensorParallelismOverride to the trial's args.
    def select_class(plural: str, body: dict[str, Any]) -> None:
        if plural == "inferenceservices":
            body["spec"]["acceleratorSelector"] = {"acceleratorClass": "h100-sxm"}

    cluster.mutate = select_class
    backend = OmeBackend(ome_spec(runtime=tp_override), study_id="s1", workdir=Path("."))
    deployment = backend.deploy({"tp_size": 2}, trial_id="tp")
    try:
        with pytest.raises(BackendError) as caught:
            backend.wait_ready(deployment, timeout_s=30)
    finally:
        backend.teardown(deployment.name)
    assert caught.value.reason == "startup"
    message = str(caught.value)
    assert "runs --tp-size 4 instead of 2" in message
    assert f"runtime {tp_override}'s" in message and "tensorParallelismOverride" in message


def test_the_tuners_own_isvc_selects_no_accelerator_class(
    cluster: FakeCluster, ome_spec: Callable[..., StudySpec], tp_override: str
) -> None:
    backend = OmeBackend(ome_spec(runtime=tp_override), study_id="s1", workdir=Path("."))
    isvc = yaml.safe_load(backend.describe({"tp_size": 2}))
    assert "acceleratorSelector" not in isvc["spec"]
    assert "acceleratorOverride" not in isvc["spec"]["engine"]
    deployment = backend.deploy({"tp_size": 2}, trial_id="tp")
    try:
        with pytest.raises(DeployTimeoutError):  # never healthy, but never refused either
            backend.wait_ready(deployment, timeout_s=1.5)
    finally:
        backend.teardown(deployment.name)


@pytest.mark.parametrize("words, changed", [
    (["--tp-size", "2", "--mem-fraction-static", "0.8"], None),
    (["--tp-size=4", "--mem-fraction-static", "0.8"], "--tp-size 4 instead of 2"),
    (["--tp-size", "2", "--tp", "4", "--mem-fraction-static", "0.8"], "--tp-size 4 instead of 2"),
    (["--tp-size", "2", "--mem-fraction-static", "0.9"],
     "--mem-fraction-static 0.9 instead of 0.8"),
])
def test_the_pod_command_line_is_read_as_argparse_would(
    words: list[str], changed: str | None
) -> None:
    # The runtime's command comes first; the last value of a flag (in any spelling) wins.
    pod = {"spec": {"containers": [{"name": "ome-container", "args": words, "command": [
        "python3", "-m", "sglang.launch_server", "--tp-size", "1", "--enable-metrics"]}]}}
    trial = ["--tp-size", "2", "--disable-radix-cache", "--mem-fraction-static", "0.8"]
    assert _argv.mismatch([pod], trial) == changed
