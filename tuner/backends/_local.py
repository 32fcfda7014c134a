"""``local``: each trial runs real ``python -m sglang.launch_server`` on this host's GPUs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import ClassVar, NoReturn

from tuner.backends._process import ProcessBackend
from tuner.backends._registry import register
from tuner.exceptions import SpecError
from tuner.spec import LocalBackendSpec

__all__ = ["LocalBackend"]

# Prints one line per step, so the answer tells "not a Python" from "a Python without sglang".
_PROBE = (
    "import sys; print('python', sys.version.split()[0], flush=True); "
    "import sglang; print('sglang', getattr(sglang, '__version__', 'unknown'))"
)


@register("local")
class LocalBackend(ProcessBackend):
    """Deviations: trials ask Ray for its native ``GPU`` resource instead of the custom pool, so
    Ray hands each trial disjoint GPU ids (``CUDA_VISIBLE_DEVICES``), which the server inherits.
    Ray must run on this host and see its GPUs. ``preflight`` checks that ``backend.python``
    is a Python that imports ``sglang``."""

    GPU_RESOURCE = "GPU"
    PREFLIGHT_TIMEOUT_S: ClassVar[float] = 120.0  # importing sglang imports torch: slow

    def _backend(self) -> LocalBackendSpec:
        assert isinstance(self.spec.backend, LocalBackendSpec)
        return self.spec.backend

    def gpu_capacity(self) -> int:
        return self._backend().gpus

    def python(self) -> str:
        """The interpreter that starts the servers."""
        return self._backend().python or sys.executable

    def server_command(self) -> list[str]:
        return [self.python(), "-m", "sglang.launch_server"]

    def resources(self, config: dict[str, object]) -> dict[str, float]:
        return {"cpu": 0, "gpu": self.spec.gpus_needed(config)}

    def preflight(self) -> None:
        """Refuse an interpreter that is missing, not executable, not Python, or without
        ``sglang``, by running it once with a short import probe (no shell).

        Raises:
            SpecError: naming ``backend.python``, what is wrong and what to set instead.
        """
        super().preflight()
        python = self.python()
        fix = (
            "set backend.python to the interpreter of the environment where "
            "`python -c 'import sglang'` works (e.g. /opt/sglang/.venv/bin/python)"
        )
        resolved = shutil.which(python)
        if resolved is None:
            if os.sep not in python:
                problem = f"'{python}' is not a command on PATH"
            elif not os.path.exists(python):
                problem = f"{python} does not exist"
            elif os.path.isdir(python):
                problem = f"{python} is a directory"
            else:
                problem = f"{python} is not executable"
            _refuse(problem, fix)
        argv = [resolved, "-c", _PROBE]
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self.PREFLIGHT_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            _refuse(
                f"{python} did not finish `import sglang` in {self.PREFLIGHT_TIMEOUT_S:.0f} s",
                f"check that it runs (`{python} -c 'import sglang'`), or {fix}",
            )
        except OSError as e:
            _refuse(f"{python} cannot be run ({e.strerror})", fix)
        lines = done.stdout.splitlines()
        if not any(line.startswith("python ") for line in lines):
            _refuse(f"{python} is not a Python interpreter", fix)
        if done.returncode != 0 or not any(line.startswith("sglang ") for line in lines):
            errors = [line for line in done.stderr.splitlines() if line.strip()]
            why = errors[-1].strip()[:300] if errors else f"exit status {done.returncode}"
            _refuse(
                f"{python} cannot import sglang ({why})",
                f"install it there (`{python} -m pip install 'sglang[all]'`) or {fix}",
            )


def _refuse(problem: str, fix: str) -> NoReturn:
    raise SpecError(f"backend.python: {problem}; {fix}", [("backend.python", problem)])
