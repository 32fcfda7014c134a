"""``local``: each trial runs real ``python -m sglang.launch_server`` on this host's GPUs."""

from __future__ import annotations

import sys

from tuner.backends._process import ProcessBackend
from tuner.backends._registry import register
from tuner.spec import LocalBackendSpec

__all__ = ["LocalBackend"]


@register("local")
class LocalBackend(ProcessBackend):
    """Deviations: trials ask Ray for its native ``GPU`` resource instead of the custom pool, so
    Ray hands each trial disjoint GPU ids (``CUDA_VISIBLE_DEVICES``), which the server inherits.
    Ray must run on this host and see its GPUs."""

    GPU_RESOURCE = "GPU"

    def _backend(self) -> LocalBackendSpec:
        assert isinstance(self.spec.backend, LocalBackendSpec)
        return self.spec.backend

    def gpu_capacity(self) -> int:
        return self._backend().gpus

    def server_command(self) -> list[str]:
        return [self._backend().python or sys.executable, "-m", "sglang.launch_server"]

    def resources(self, config: dict[str, object]) -> dict[str, float]:
        return {"cpu": 0, "gpu": self.spec.gpus_needed(config)}
