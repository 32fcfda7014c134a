"""SGLang digital twin: sglang.launch_server's command line, API and behaviour on a CPU.

``python -m twin.launch_server`` serves the OpenAI API with SGLang's scheduler simulated in
(optionally scaled) real time; ``twin.estimate`` runs the same model in virtual time.
"""

from __future__ import annotations

from twin._catalog import MODELS as _MODELS
from twin._errors import StartupError
from twin._estimate import estimate
from twin._facts import GPU_TABLE as _GPU_TABLE
from twin._resolve import resolve_server_args
from twin._tokenizer import BUNDLED_TOKENIZER

CATALOG: tuple[str, ...] = tuple(_MODELS)
GPUS: tuple[str, ...] = tuple(_GPU_TABLE)

__all__ = [
    "BUNDLED_TOKENIZER",
    "CATALOG",
    "GPUS",
    "StartupError",
    "estimate",
    "resolve_server_args",
]
