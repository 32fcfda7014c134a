"""SGLang's start-up refusals that depend on several flags (and the GPU): the built-in
constraints every search, the grid and the pre-screen respect.

Each rule is what ``ServerArgs.__post_init__`` or the CUDA-graph runner of SGLang 0.5.5 does:
- ``cuda_graph_max_bs`` below 1 leaves no batch size to capture and ``max([])`` raises, unless
  ``disable_cuda_graph`` is set;
- ``chunked_prefill_size % page_size == 0`` is asserted, with the auto chunk size SGLang derives
  from the GPU's memory when the flag is unset (the twin computes it, ``twin._resolve``);
- ``trtllm_mha`` (as any of the three attention backends) raises on GPUs other than SM100.
``tests/tuner/serverargs/test_rules.py`` checks each against the wheel's source.
"""

from __future__ import annotations

from collections.abc import Mapping

from twin import GPUS, SM100_GPUS, auto_chunked_prefill_size

__all__ = ["SM100_GPUS", "auto_chunk_sizes", "gpu_problem", "startup_problem"]

_ATTENTION_FLAGS = ("attention_backend", "prefill_attention_backend", "decode_attention_backend")


def auto_chunk_sizes(gpu: str | None) -> set[int]:
    """SGLang's auto ``chunked_prefill_size`` on ``gpu``; on an unnamed GPU (local, ome), the
    sizes of every GPU the twin knows, since any of them may be the one."""
    return {auto_chunked_prefill_size(g) for g in ([gpu] if gpu is not None else GPUS)}


def startup_problem(config: Mapping[str, object], gpu: str | None = None) -> str | None:
    """Why SGLang would refuse to start with these flags on ``gpu`` (None: GPU not named,
    only the GPU-independent rules apply), or None.

    Args:
        config: flag values by name (fixed and searched); absent flags keep SGLang's default.
        gpu: a GPU type of ``twin.GPUS``, or None.
    """
    graph_bs = config.get("cuda_graph_max_bs")
    if isinstance(graph_bs, int | float) and graph_bs < 1 and not config.get("disable_cuda_graph"):
        return (
            f"cuda_graph_max_bs {graph_bs:g} leaves no CUDA-graph batch size and SGLang fails "
            "at start-up; use at least 1, or set disable_cuda_graph: true"
        )
    page = config.get("page_size")
    if isinstance(page, int) and page > 1 and config.get("disaggregation_mode") != "decode":
        chunk = config.get("chunked_prefill_size")
        chunks = auto_chunk_sizes(gpu) if chunk is None else {chunk}
        for size in sorted(c for c in chunks if isinstance(c, int) and c > 0):
            if size % page:
                auto = " (SGLang's auto size on this GPU)" if chunk is None else ""
                return (
                    f"chunked_prefill_size {size}{auto} is not a multiple of page_size {page}; "
                    "SGLang asserts it at start-up: pick sizes that divide each other"
                )
    for name, value in config.items():
        if problem := gpu_problem(name, value, gpu):
            return f"{name} {problem}"
    return None


def gpu_problem(name: str, value: object, gpu: str | None) -> str | None:
    """Why one flag value cannot run on ``gpu`` whatever the other flags are, or None."""
    if name in _ATTENTION_FLAGS and value == "trtllm_mha" and gpu is not None \
            and gpu not in SM100_GPUS:
        return (
            f"trtllm_mha runs only on Blackwell (SM100) GPUs such as "
            f"{', '.join(sorted(SM100_GPUS))}, not {gpu}; use fa3, flashinfer or triton"
        )
    return None
