"""Memory of one replica: weight bytes per GPU, load time, activations and the memory log."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from twin import _catalog, _facts
from twin._errors import StartupError
from twin._facts import fact

if TYPE_CHECKING:
    from twin._resolve import EngineConfig

_MIB = 1024 * 1024
_DTYPE_BYTES = {"half": 2, "float16": 2, "bfloat16": 2, "float": 4, "float32": 4}


def weight_format(model: _catalog.ModelSpec, args: argparse.Namespace) -> tuple[int, float]:
    """Bytes per activation element and per decoder-layer weight.

    Args:
        model: The model.
        args: Validated launch_server arguments.

    Returns:
        ``(activation bytes, decoder weight bytes)``; a checkpoint quantized to fp8 blocks
        (DeepSeek-V3/R1) loads as such without ``--quantization``, scales included.
    """
    dtype = model.dtype if args.dtype == "auto" else args.dtype
    dtype_bytes = _DTYPE_BYTES.get(dtype, 2)
    if args.quantization is None and model.quantization == "fp8":
        return dtype_bytes, 1.0 + fact("fp8_block_scale_bytes")
    quant = args.quantization or model.quantization
    return dtype_bytes, _facts.WEIGHT_BYTES_BY_QUANTIZATION.get(quant or "", dtype_bytes)


def weights(model: _catalog.ModelSpec, args: argparse.Namespace) -> tuple[int, float]:
    # (bytes per activation element, weight bytes per GPU). Quantized checkpoints keep
    # embeddings and LM head in the checkpoint dtype; only the decoder layers shrink. Routed
    # experts take the same room per GPU under EP (E / ep experts of width I / (tp / ep))
    # as under TP (E experts of width I / tp). With dp-attention the attention weights are
    # split over the attention-TP group only (replicated over the DP ranks).
    dtype_bytes, layer_bytes = weight_format(model, args)
    layers = model.decoder_params
    total = layers * layer_bytes + (model.total_params - layers) * dtype_bytes
    per_gpu = total / args.tp_size
    if args.enable_dp_attention and args.dp_size > 1 and args.tp_size % args.dp_size == 0:
        attn = model.layers * model.attn_params * layer_bytes
        per_gpu += attn / (args.tp_size // args.dp_size) - attn / args.tp_size
    return dtype_bytes, per_gpu


def load_seconds(args: argparse.Namespace) -> float:
    """Simulated seconds from process start until SGLang has loaded the weights.

    Args:
        args: Validated launch_server arguments.

    Returns:
        Initialisation (plus NCCL set-up with TP) and weight loading time.

    Raises:
        ValueError: ``--model-path`` names no known model.
    """
    model = _catalog.load_model(args.model_path)
    per_gpu = weights(model, args)[1]
    nccl = 5.0 if args.tp_size > 1 else 0.0
    return fact("init_s") + nccl + per_gpu / fact("load_bytes_per_s")


def oom(what: str, need_mib: float, free_mib: float, gpu_mib: int, advice: str) -> StartupError:
    return StartupError(
        f"{what}torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
        f"{need_mib:.2f} MiB. GPU 0 has a total capacity of {gpu_mib / 1024:.2f} GiB of which "
        f"{max(free_mib, 0.0):.2f} MiB is free. {advice}",
        "oom",
    )


def activation_mib(model: _catalog.ModelSpec, tp: int, tokens: int, dtype_bytes: int) -> float:
    width = (
        2 * model.hidden
        + (model.heads + 2 * model.kv_heads) * model.head_dim / tp
        + 3 * model.intermediate / tp
    )
    per_elem = fact("activation_bytes_per_elem") * dtype_bytes / 2
    return tokens * width * per_elem / _MIB + fact("attn_workspace_mib")


def log_memory(config: EngineConfig) -> list[str]:
    """SGLang-like start-up log lines about memory.

    Args:
        config: Resolved configuration.

    Returns:
        Lines in start-up order.
    """
    gib = 1024.0**3
    total = config.gpu.memory_mib / 1024
    weights = config.weight_bytes / gib
    avail = total - weights - fact("runtime_reserve_mib") / 1024
    kv = config.max_total_tokens * config.kv_cell_bytes / gib
    graph = fact("graph_mib_per_bs") * (config.cuda_graph_bs[-1] if config.cuda_graph_bs else 0)
    return [
        f"Load weight end. type={config.model.architecture}, dtype=torch.bfloat16, "
        f"avail mem={avail:.2f} GB, mem usage={weights:.2f} GB.",
        f"KV Cache is allocated. #tokens: {config.max_total_tokens}, "
        f"K size: {kv / 2:.2f} GB, V size: {kv / 2:.2f} GB",
        f"Memory pool end. avail mem={avail - kv:.2f} GB",
        f"Capture cuda graph end. Time elapsed: "
        f"{config.capture_s:.2f} s. "
        f"mem usage={graph / 1024:.2f} GB. avail mem={avail - kv - graph / 1024:.2f} GB.",
        f"max_total_num_tokens={config.max_total_tokens}, "
        f"chunked_prefill_size={config.chunked_prefill_size or -1}, "
        f"max_prefill_tokens={config.max_prefill_tokens}, "
        f"max_running_requests={config.max_running_requests}, "
        f"context_len={config.context_len}, "
        f"available_gpu_mem={avail - kv - graph / 1024:.2f} GB",
    ]
