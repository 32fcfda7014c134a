"""The ``local`` backend's preflight: ``backend.python`` must be a Python that imports sglang."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tuner.backends import Backend, make
from tuner.exceptions import BackendError, SpecError
from tuner.spec import spec_from_dict

from .sglang_logs import TORCH_OOM, scheduler_death_log
from .test_process import sglang_shim  # noqa: F401  (the fixture, used by name)


def local_backend(tmp_path: Path, python: str | None) -> Backend:
    backend: dict[str, Any] = {"kind": "local"}
    if python is not None:
        backend["python"] = python
    spec = spec_from_dict({"name": "local", "model": {"name": "Llama-3.2-1B-Instruct"},
                           "backend": backend, "space": {"tp_size": [1]}})
    return make(spec, study_id="local-preflight", workdir=tmp_path)


def refusal(tmp_path: Path, python: str) -> str:
    with pytest.raises(SpecError) as info:
        local_backend(tmp_path, python).preflight()
    assert [path for path, _ in info.value.errors] == ["backend.python"]
    return str(info.value)


@pytest.mark.usefixtures("sglang_shim")
def test_a_python_that_imports_sglang_passes(tmp_path: Path) -> None:
    local_backend(tmp_path, sys.executable).preflight()
    local_backend(tmp_path, None).preflight()  # the default: this interpreter


def test_a_program_that_is_not_python_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, "/usr/bin/touch")
    assert "/usr/bin/touch is not a Python interpreter" in message
    assert "set backend.python" in message


def test_a_missing_or_unusable_interpreter_is_refused(tmp_path: Path) -> None:
    assert "does not exist" in refusal(tmp_path, str(tmp_path / "nope" / "python"))
    assert "is not a command on PATH" in refusal(tmp_path, "no-such-python-3")
    assert "is a directory" in refusal(tmp_path, str(tmp_path))
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\nexit 0\n")
    assert "is not executable" in refusal(tmp_path, str(script))


def test_a_python_without_sglang_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "empty"))  # no shim on the path
    message = refusal(tmp_path, sys.executable)
    assert "cannot import sglang" in message and "ModuleNotFoundError" in message
    assert "pip install" in message


def test_a_hanging_interpreter_is_refused_in_time(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    slow = tmp_path / "slow-python"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    os.chmod(slow, 0o755)
    backend = local_backend(tmp_path, str(slow))
    monkeypatch.setattr(type(backend), "PREFLIGHT_TIMEOUT_S", 0.5)
    with pytest.raises(SpecError, match="did not finish `import sglang`"):
        backend.preflight()


def test_other_backends_have_nothing_to_check(tmp_path: Path) -> None:
    spec = spec_from_dict({"name": "twin", "model": {"name": "Llama-3.2-1B-Instruct"},
                           "space": {"tp_size": [1]}})
    make(spec, study_id="twin-preflight", workdir=tmp_path).preflight()


def test_a_scheduler_oom_is_reported_not_the_sigquit_echo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sglang_wheel: Any
) -> None:
    # An `sglang.launch_server` that prints what SGLang 0.5.5 prints when its schedulers run
    # out of GPU memory, then SIGKILLs itself as its sigquit handler does.
    package = tmp_path / "dying" / "sglang"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    log = scheduler_death_log(sglang_wheel)
    (package / "launch_server.py").write_text(
        "import os, signal, sys\n"
        f"sys.stdout.write({log!r})\n"
        "sys.stdout.flush()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    root = Path(__file__).resolve().parents[3]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(package.parent), str(root)]))
    backend = local_backend(tmp_path, sys.executable)
    deployment = backend.deploy(backend.spec.server_config({"tp_size": 1}), trial_id="oom")
    try:
        with pytest.raises(BackendError) as info:
            backend.wait_ready(deployment, timeout_s=60)
    finally:
        backend.teardown(deployment.name)
    assert info.value.reason == "oom"
    message = str(info.value)
    assert TORCH_OOM in message and "child failed" not in message
