"""``twin``: each trial runs the project's SGLang digital twin as a local process."""

from __future__ import annotations

import sys
from pathlib import Path

from tuner.backends._estimate import read_profile
from tuner.backends._process import ProcessBackend
from tuner.backends._registry import register
from tuner.spec import TwinBackendSpec

__all__ = ["TwinBackend"]


@register("twin")
class TwinBackend(ProcessBackend):
    """Deviations from real SGLang: the server is ``python -m twin.launch_server`` with the
    simulated GPU (``--gpu``), its count (``--num-gpus``), ``--time-scale``, one ``--fault``
    per ``backend.faults`` entry and ``--profile`` when ``backend.profile`` is set; measured
    latencies and throughputs are rescaled to real time.
    GPUs are simulated, so any number of them fit on a CPU host."""

    def _backend(self) -> TwinBackendSpec:
        assert isinstance(self.spec.backend, TwinBackendSpec)
        return self.spec.backend

    def gpu_capacity(self) -> int:
        return self._backend().gpus

    def server_command(self) -> list[str]:
        return [sys.executable, "-m", "twin.launch_server"]

    def extra_argv(self) -> list[str]:
        backend = self._backend()
        return [
            "--gpu",
            backend.gpu,
            "--num-gpus",
            str(backend.gpus),
            "--time-scale",
            str(backend.time_scale),
            *(arg for fault in backend.faults for arg in ("--fault", fault)),
            # An absolute path without control characters (the spec checks it), never
            # starting with '-': argv cannot take it for a flag.
            *(["--profile", backend.profile] if backend.profile else []),
        ]

    def preflight(self) -> None:
        super().preflight()
        # The server would refuse a bad profile at start-up, once per trial: say it once.
        read_profile(self._backend().profile, "backend.profile")

    def time_scale(self) -> float:
        return self._backend().time_scale

    def tokenizer(self) -> str:
        return twin_tokenizer(self.spec.model.tokenizer, self.spec.model.model_path)


def twin_tokenizer(tokenizer: str | None, model_path: str) -> str:
    """The tokenizer to count a twin's prompts with: the given one, the model dir's, or the
    small one bundled with the twin (never a hub download)."""
    if tokenizer:
        return tokenizer
    if (Path(model_path) / "tokenizer.json").is_file():
        return model_path
    import twin

    return str(twin.BUNDLED_TOKENIZER)
