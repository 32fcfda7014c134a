"""The backend contract (contract.py) run against twin, local (twin as SGLang) and ome."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tuner.backends._ome import OmeBackend
from tuner.spec import StudySpec

from .contract import BackendContract, Contract
from .fake_k8s import FakeCluster
from .test_process import backend_for, sglang_shim  # noqa: F401  (the fixture, used by name)

# Prepended to the sglang shim (which already skips the start-up wait): serve in scaled time.
_FAST_TWIN = "import sys\nsys.argv += ['--time-scale', '20']\n"
# 16 GB of Llama-3.1-8B weights do not fit in 10 % of an 80 GB H100: the server runs out of memory.
_OOM = {"model": "Llama-3.1-8B-Instruct", "mem_fraction_static": 0.1}


def _files(root: Path) -> object:
    """The files under ``root`` and this process's children: what a process backend leaves."""
    files = sorted(str(p) for p in root.rglob("*")) if root.exists() else []
    return files, sorted(p.pid for p in psutil.Process().children(recursive=True))


@pytest.fixture(params=["twin", "local", "ome"])
def contract(request: pytest.FixtureRequest, tmp_path: Path) -> Contract:
    kind: str = request.param
    if kind == "ome":
        request.getfixturevalue("twin_server")
        cluster: FakeCluster = request.getfixturevalue("cluster")
        make: Callable[..., StudySpec] = request.getfixturevalue("ome_spec")
        return Contract(
            backend=OmeBackend(make(), study_id="contract", workdir=tmp_path),
            failing=OmeBackend(make(base_model="no-such-model"), study_id="contract",
                               workdir=tmp_path),
            footprint=lambda: (len(cluster.requests), cluster.list("inferenceservices")),
        )
    if kind == "local":
        launcher = request.getfixturevalue("sglang_shim") / "launch_server.py"
        launcher.write_text(_FAST_TWIN + launcher.read_text())
    backend = backend_for(kind, tmp_path)
    return Contract(backend=backend, failing=backend_for(kind, tmp_path, **_OOM),
                    footprint=lambda: _files(tmp_path))


class TestBackendContract(BackendContract):
    """Every test of the contract, once per backend."""
