"""SGLang digital twin: sglang.launch_server's command line, API and behaviour on a CPU.

``python -m twin.launch_server`` serves the OpenAI API with SGLang's scheduler simulated in
(optionally scaled) real time; ``twin.estimate`` runs the same model in virtual time.
``twin.using_profile`` / ``twin.load_profile`` apply fact profiles fitted to measurements.
"""

from __future__ import annotations

from twin._args import SM100_GPUS
from twin._args import modelled as modelled_flags
from twin._catalog import MODELS as _MODELS
from twin._errors import StartupError
from twin._estimate import estimate
from twin._gpus import GPU_TABLE as _GPU_TABLE
from twin._profile import Profile, load_profile, using_profile
from twin._resolve import VERSION as SGLANG_VERSION
from twin._resolve import memory_tier as _memory_tier
from twin._resolve import resolve_server_args
from twin._tokenizer import BUNDLED_TOKENIZER, load_tokenizer
from twin._workload import bench_serving_random_lengths, dataset_lengths, sample_lengths

CATALOG: tuple[str, ...] = tuple(_MODELS)
GPUS: tuple[str, ...] = tuple(_GPU_TABLE)


def auto_chunked_prefill_size(gpu: str) -> int:
    """SGLang's ``chunked_prefill_size`` when the flag is unset, on a GPU of :data:`GPUS`
    (tokens; it follows the GPU's memory)."""
    return _memory_tier(_GPU_TABLE[gpu].memory_mib).chunked_prefill_size


__all__ = [
    "BUNDLED_TOKENIZER",
    "CATALOG",
    "GPUS",
    "Profile",
    "SGLANG_VERSION",
    "SM100_GPUS",
    "auto_chunked_prefill_size",
    "bench_serving_random_lengths",
    "dataset_lengths",
    "StartupError",
    "estimate",
    "load_profile",
    "load_tokenizer",
    "modelled_flags",
    "resolve_server_args",
    "sample_lengths",
    "using_profile",
]
