"""Fixtures for the ``ome`` backend's tests: OME's real CRDs and samples, and a fake cluster."""

from __future__ import annotations

import copy
import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tuner.spec import StudySpec

from .fake_k8s import OME_DIR, CrdSchemas, FakeCluster

NAMESPACE = "autotuner"
MODEL = "qwen3-8b"  # the sample ClusterBaseModel; the twin knows it as Qwen3-8B
RUNTIME = "srt-qwen3-8b"  # the sample ClusterServingRuntime
SERVED = "Qwen/Qwen3-8B"
# Fast twins: the fake cluster appends these to every SGLang command it runs.
TWIN_ARGS = ("--gpu", "H100", "--time-scale", "20", "--startup-time-scale", "1000")


def _require(path: Path, what: str) -> None:
    if path.exists():
        return
    message = f"{what} not found at {path}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must provide ../shared/ome/")
    pytest.skip(message)


@pytest.fixture(scope="session")
def ome_dir() -> Path:
    """``../shared/ome`` (OME's CRDs and samples, unmodified): skip without it, fail in CI."""
    _require(OME_DIR / "crds", "OME's CRDs")
    return OME_DIR


@pytest.fixture(scope="session")
def crds(ome_dir: Path) -> CrdSchemas:
    """The CRD schemas, parsed once per session (the isvc CRD alone is 1.8 MB)."""
    return CrdSchemas(ome_dir / "crds")


@pytest.fixture(scope="session")
def sample(ome_dir: Path) -> Callable[[str], dict[str, Any]]:
    """Load one of OME's sample manifests, e.g. ``sample("runtimes/qwen3-8b-rt.yaml")``."""
    def load(relative: str) -> dict[str, Any]:
        docs = [d for d in yaml.safe_load_all((ome_dir / "samples" / relative).read_text()) if d]
        return copy.deepcopy(docs[-1])

    return load


@pytest.fixture
def twin_server() -> None:
    """Skip when the SGLang digital twin is not in the tree yet (fail in CI)."""
    if importlib.util.find_spec("twin.launch_server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("twin.launch_server is missing")
        pytest.skip("twin.launch_server is not there yet")


@pytest.fixture
def cluster(crds: CrdSchemas, sample: Callable[[str], dict[str, Any]], tmp_path: Path
            ) -> Iterator[FakeCluster]:
    """A started fake cluster: namespace ``autotuner``, one 4-GPU node holding the model,
    the sample ClusterBaseModel and ClusterServingRuntime applied."""
    fake = FakeCluster(schemas=crds, workdir=tmp_path, twin_args=TWIN_ARGS)
    with fake:
        fake.add_namespace(NAMESPACE)
        fake.add_node("gpu-1", gpus=4, models=(MODEL,))
        fake.apply(sample("models/Qwen3-8B.yaml"))
        fake.apply(sample("runtimes/qwen3-8b-rt.yaml"))
        yield fake


@pytest.fixture
def ome_spec(cluster: FakeCluster, tmp_path: Path) -> Callable[..., StudySpec]:
    """Build an ``ome`` study spec for the fake cluster; keyword arguments go to ``backend``."""
    kubeconfig = cluster.kubeconfig(tmp_path / "kubeconfig")

    def make(space: dict[str, Any] | None = None, **backend: Any) -> StudySpec:
        return StudySpec.model_validate({
            "name": "ome-test",
            "model": {"name": SERVED},
            "backend": {"kind": "ome", "namespace": NAMESPACE, "base_model": MODEL,
                        "runtime": RUNTIME, "kubeconfig": str(kubeconfig),
                        "in_cluster": False, "startup_timeout_s": 60,
                        "teardown_timeout_s": 20, **backend},
            "space": space or {"tp_size": [1, 2]},
            "workload": {"scenarios": ["D(64,16)"], "concurrency": [2],
                         "max_requests_per_level": 8},
        })

    return make
