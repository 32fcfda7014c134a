"""The process backends (twin, and local with the twin standing in for SGLang), and estimate.

Each backend meets the same contract: deploy, become ready, answer, be found and torn down from
its name alone (idempotently), be swept after a driver crash, and report start-up failures
with a reason.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tuner.backends import Backend, make
from tuner.exceptions import BackendError
from tuner.spec import spec_from_dict

# A stand-in `sglang` package whose launch_server is the twin: `local` runs it with the
# flags it is given, plus a start-up (not serving) time scale the test does not wait out.
_SGLANG_SHIM = (
    "import runpy, sys\n"
    "sys.argv += ['--startup-time-scale', '1000']\n"
    "runpy.run_module('twin.launch_server', run_name='__main__', alter_sys=True)\n"
)
_TWIN_ARGS = {"time_scale": 20, "startup_timeout_s": 60}


@pytest.fixture
def sglang_shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = tmp_path / "shim" / "sglang"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "launch_server.py").write_text(_SGLANG_SHIM)
    root = Path(__file__).resolve().parents[3]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(package.parent), str(root)]))
    return package


def backend_for(kind: str, tmp_path: Path, model: str = "Llama-3.2-1B-Instruct",
                **fixed: Any) -> Backend:
    backend: dict[str, Any] = {"kind": kind, "gpus": 2}
    if kind == "twin":
        backend.update(_TWIN_ARGS)
    spec = spec_from_dict({"name": "contract", "model": {"name": model},
                           "backend": backend, "space": {"tp_size": [1]}, "fixed": fixed})
    # A study id of its own: servers of other tests (or runs) must not be swept by this one.
    return make(spec, study_id=f"contract-{uuid.uuid4().hex[:6]}", workdir=tmp_path / kind)


@pytest.mark.parametrize("kind", ["twin", "local"])
def test_deploy_serve_teardown_sweep(kind: str, tmp_path: Path, sglang_shim: Path) -> None:
    backend = backend_for(kind, tmp_path)
    config = backend.spec.server_config({"tp_size": 1})
    deployment = backend.deploy(config, trial_id="t0001")
    try:
        assert deployment.name == f"{backend.study_id}-t0001"
        backend.wait_ready(deployment, timeout_s=60)
        assert backend.alive(deployment) is None
        models = httpx.get(f"{deployment.endpoint}/v1/models", timeout=10).json()
        assert models["data"][0]["id"] == "Llama-3.2-1B-Instruct"
        described = backend.describe(config)
        assert ("twin.launch_server" if kind == "twin" else "sglang.launch_server") in described
    finally:
        backend.teardown(deployment.name)
    assert backend.alive(deployment) is not None
    backend.teardown(deployment.name)  # idempotent
    # A second server, left behind by a "killed driver": the sweep finds it by its tags.
    orphan = backend.deploy(config, trial_id="t0002")
    backend.wait_ready(orphan, timeout_s=60)
    pid = next(p for p in psutil.process_iter() if _tag(p) == orphan.name).pid
    (backend.workdir / "servers" / f"{orphan.name}.json").unlink()  # records lost too
    assert backend.sweep() == [orphan.name]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _tag(process: psutil.Process) -> str | None:
    try:
        return process.environ().get("AUTOTUNER_DEPLOYMENT")
    except (psutil.Error, OSError):
        return None


def test_start_up_failures_carry_a_reason(tmp_path: Path) -> None:
    # 16 GB of Llama-3.1-8B weights do not fit in 10 % of an 80 GB H100.
    backend = backend_for("twin", tmp_path, "Llama-3.1-8B-Instruct", mem_fraction_static=0.1)
    deployment = backend.deploy(backend.spec.server_config({}), trial_id="t1")
    try:
        with pytest.raises(BackendError) as info:
            backend.wait_ready(deployment, timeout_s=60)
    finally:
        backend.teardown(deployment.name)
    assert info.value.reason == "oom"
    assert info.value.log_path and Path(info.value.log_path).exists()
    # Four replicas on a two-GPU host: SGLang refuses to start, and so does the twin.
    deployment = backend.deploy({"dp_size": 4}, trial_id="t2")
    try:
        with pytest.raises(BackendError) as info:
            backend.wait_ready(deployment, timeout_s=60)
    finally:
        backend.teardown(deployment.name)
    assert info.value.reason == "startup"


def test_estimate_backend_predicts_and_fails_like_the_server(tmp_path: Path) -> None:
    backend = backend_for("estimate", tmp_path)
    good = backend.deploy({"tp_size": 1}, trial_id="t1")
    backend.wait_ready(good, timeout_s=1)
    level = backend.measure(good, scenario="D(256,64)", concurrency=8, out_dir=tmp_path)
    assert level.concurrency == 8 and level.output_throughput > 0 and level.ttft_p99_ms > 0
    bad = backend.deploy({"tp_size": 1, "mem_fraction_static": 0.01}, trial_id="t2")
    with pytest.raises(BackendError) as info:
        backend.wait_ready(bad, timeout_s=1)
    assert info.value.reason == "oom"
    assert "sglang.launch_server" in backend.describe({"tp_size": 1})


def test_the_python_that_starts_servers_is_this_one(tmp_path: Path) -> None:
    assert backend_for("local", tmp_path).describe({}).startswith(sys.executable)


def test_a_server_killed_before_it_spoke_is_started_once_more(tmp_path: Path) -> None:
    import signal

    backend = backend_for("twin", tmp_path)
    deployment = backend.deploy(backend.spec.server_config({}), trial_id="t1")
    first = json.loads((backend.workdir / "servers" / f"{deployment.name}.json").read_text())
    os.kill(first["pid"], signal.SIGKILL)  # before the interpreter has even imported twin
    try:
        backend.wait_ready(deployment, timeout_s=60)
        second = json.loads((backend.workdir / "servers" / f"{deployment.name}.json").read_text())
        assert second["pid"] != first["pid"] and backend.alive(deployment) is None
    finally:
        backend.teardown(deployment.name)
