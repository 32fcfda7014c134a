"""The one exception the twin raises for a configuration SGLang could not start with."""

from __future__ import annotations

from typing import Literal

StartupKind = Literal["oom", "startup"]


class StartupError(RuntimeError):
    """A server configuration that SGLang would fail to start with.

    ``str(error)`` is the text the twin's server logs before it exits with status 1.

    Attributes:
        kind: ``"oom"`` when memory does not fit (weights, KV pool, activations or CUDA
            graphs), ``"startup"`` for other start-up failures (tensor parallel size that does
            not divide the heads, more GPUs than the host has, context too long).
    """

    def __init__(self, message: str, kind: StartupKind) -> None:
        super().__init__(message)
        self.kind: StartupKind = kind
