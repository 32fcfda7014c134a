"""SGLang 0.5.5's start-up: auto defaults, memory plan and the checks that make start-up fail."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any

from twin import _args, _catalog, _facts, _gpus, _parallel, _speculative
from twin._errors import StartupError
from twin._fact_types import MemoryTier
from twin._facts import fact
from twin._memory import activation_mib, load_seconds, oom, weight_format, weights

VERSION = "0.5.5"
_MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Everything the scheduler and the performance model need, resolved like SGLang.

    Attributes:
        model: Architecture facts.
        gpu: GPU specs.
        tp: Tensor parallel size.
        dp: Data parallel replicas.
        dtype_bytes: Bytes per activation element.
        gemm_low_precision: Whether the linear layers run on 8-bit tensor cores (at the fp8
            peak, with that path's efficiency, ``twin._facts.gemm_efficiency``).
        kv_bytes: Bytes per KV element.
        weight_bytes: Weight bytes per GPU.
        kv_cell_bytes: KV bytes per token per GPU.
        mem_fraction_static: Resolved ``--mem-fraction-static``.
        max_total_tokens: KV pool size per replica, in tokens.
        max_running_requests: Cap of running requests per replica.
        max_prefill_tokens: Token budget of one prefill batch.
        chunked_prefill_size: Chunk size, or ``None`` when chunking is off.
        context_len: Context length.
        max_req_input_len: Longest accepted prompt.
        cuda_graph_max_bs: Resolved ``--cuda-graph-max-bs``.
        cuda_graph_bs: Captured decode batch sizes (empty when CUDA graphs are off).
        torch_compile_max_bs: Largest compiled batch, 0 without ``--enable-torch-compile``.
        graph_prefill_max_tokens: Largest prefill forward replayed as a piecewise CUDA graph,
            0 when every prefill runs eagerly (``piecewise_graph_max_tokens``).
        schedule_policy: Waiting-queue policy (cache-aware ones become fcfs without cache).
        conservativeness: ``--schedule-conservativeness``.
        radix_cache: Whether prefix caching is on.
        mixed_chunk: Whether decode requests ride in prefill batches.
        overlap: Whether the overlap scheduler hides CPU time.
        stream_interval: ``--stream-interval``.
        load_s: Simulated seconds until the weights are loaded.
        capture_s: Simulated seconds of CUDA-graph capture.
        startup_s: Simulated seconds until the server listens (before any time scaling);
            the warm-up request comes after.
        server_info: Resolved arguments as ``/get_server_info`` shows them.
        layout: Parallel layout (dp-attention, attention TP, expert parallelism).
        decoder_weight_bytes: Bytes per decoder-layer weight (scales included).
        speculative: Speculative decoding, or None.
        moe_runner: The routed experts' kernels, ``moe_runner_backend`` as SGLang resolves
            it (:func:`moe_runner`): ``flashinfer_trtllm`` or ``triton``.
    """

    model: _catalog.ModelSpec
    gpu: _gpus.GpuSpec
    tp: int
    dp: int
    dtype_bytes: int
    gemm_low_precision: bool
    kv_bytes: float
    weight_bytes: float
    kv_cell_bytes: float
    mem_fraction_static: float
    max_total_tokens: int
    max_running_requests: int
    max_prefill_tokens: int
    chunked_prefill_size: int | None
    context_len: int
    max_req_input_len: int
    cuda_graph_max_bs: int
    cuda_graph_bs: tuple[int, ...]
    torch_compile_max_bs: int
    graph_prefill_max_tokens: int
    schedule_policy: str
    conservativeness: float
    radix_cache: bool
    mixed_chunk: bool
    overlap: bool
    stream_interval: int
    load_s: float
    capture_s: float
    startup_s: float
    server_info: Mapping[str, object]
    layout: _parallel.Layout = _parallel.Layout(False, 1, 1, False, 1, True)
    decoder_weight_bytes: float = 2.0
    speculative: _speculative.Speculative | None = None
    moe_runner: str = "triton"

    @property
    def gemm_flops(self) -> float:
        """Peak FLOP/s of the linear layers: the fp8 peak for 8-bit and fp4 formats."""
        return self.gpu.fp8_flops if self.gemm_low_precision else self.gpu.bf16_flops


def memory_tier(gpu_mib: float) -> MemoryTier:
    """SGLang's memory tier of a GPU: the auto chunk size and CUDA-graph batch cap.

    Args:
        gpu_mib: GPU memory as torch reports it, MiB.

    Returns:
        The tier.
    """
    return next(t for t in _facts.MEMORY_TIERS if gpu_mib < t.below_mib)


def auto_cuda_graph_max_bs(gpu_mib: float, tp: int) -> int:
    """SGLang's default ``--cuda-graph-max-bs`` for a GPU and TP size.

    Args:
        gpu_mib: GPU memory, MiB.
        tp: ``--tp-size``.

    Returns:
        The cap, in requests.
    """
    tier = memory_tier(gpu_mib)
    large = tp >= fact("cuda_graph_bs_tp_large")
    return tier.cuda_graph_max_bs_tp4 if large else tier.cuda_graph_max_bs


def auto_mem_fraction_static(
    gpu_mib: float,
    chunk: int,
    max_prefill_tokens: int,
    graph_bs: int,
    tp: int,
    dp_attention_size: int = 0,
) -> float:
    """SGLang's default ``--mem-fraction-static``: what is left after a fixed reserve.

    Args:
        gpu_mib: GPU memory, MiB.
        chunk: Resolved ``--chunked-prefill-size`` (-1: chunking off).
        max_prefill_tokens: ``--max-prefill-tokens``.
        graph_bs: Resolved ``--cuda-graph-max-bs``.
        tp: ``--tp-size`` (pipeline parallelism is not modelled: pp = 1).
        dp_attention_size: ``--dp-size`` when dp-attention is on, else 0.

    Returns:
        The fraction, rounded to 3 digits as SGLang does.
    """
    # Activations scale with the largest prefill forward: the chunk, or the whole prefill
    # budget when chunking is off.
    tokens = chunk if chunk > 0 else max_prefill_tokens
    reserved = (
        fact("reserve_base_mib")
        + fact("reserve_mib_per_prefill_token") * max(tokens, fact("reserve_min_prefill_tokens"))
        + fact("reserve_mib_per_graph_bs") * graph_bs
        + fact("reserve_mib_per_8_ranks") * tp / 8
    )
    if dp_attention_size:
        reserved += fact("dp_attn_reserve_mib_per_bs_rank") * graph_bs * dp_attention_size
        if graph_bs > fact("dp_attn_reserve_large_bs"):
            reserved += (
                fact("dp_attn_reserve_large_mib_per_bs_rank") * graph_bs * dp_attention_size
            )
    if gpu_mib > fact("reserve_floor_gpu_mib"):
        reserved = max(reserved, fact("reserve_floor_mib"))
    return round((gpu_mib - reserved) / gpu_mib, 3)


def capture_sizes(max_bs: int, pool_size: int) -> tuple[int, ...]:
    """Decode batch sizes SGLang captures as CUDA graphs.

    Args:
        max_bs: Resolved ``--cuda-graph-max-bs``.
        pool_size: Size of the request pool (``--max-running-requests`` when given).

    Returns:
        The sizes, ascending; empty when none is left.
    """
    sizes = list(_facts.CUDA_GRAPH_BS_LIST)
    for start, stop, step in _facts.CUDA_GRAPH_BS_RANGES:
        sizes += range(start, max_bs + 1 if stop is None else stop, step)
    sizes = [bs for bs in sizes if bs <= max_bs]
    # Only the pool size is added, and only when the grid overshoots it: an off-grid
    # --cuda-graph-max-bs is not captured itself.
    if sizes and sizes[-1] > pool_size:
        sizes.append(pool_size)
    return tuple(sorted({bs for bs in sizes if bs <= pool_size}))


# ServerArgs._generate_piecewise_cuda_graph_tokens (0.5.5): these sizes, then 4352, 4608, ...
# up to --piecewise-cuda-graph-max-tokens.
_PIECEWISE_SIZES = (
    *range(4, 33, 4), *range(48, 257, 16), *range(288, 513, 32), *range(640, 4097, 128)
)
_PIECEWISE_STEP_FROM, _PIECEWISE_STEP = 4352, 256


def piecewise_graph_max_tokens(
    args: argparse.Namespace, model: _catalog.ModelSpec, graph_off: bool
) -> int:
    """Largest prefill forward replayed as a piecewise CUDA graph; 0 when none is.

    As SGLang 0.5.5's ``ModelRunner``: ``--enable-piecewise-cuda-graph`` is dropped with CUDA
    graphs off, with ``--enable-torch-compile``, and for models whose layers are not all
    standard GQA attention (MLA); the runner captures the token counts ``ServerArgs``
    generates up to ``--piecewise-cuda-graph-max-tokens`` and replays forwards up to the
    largest.

    Raises:
        StartupError: The capture list is empty (fewer than 4 tokens): SGLang's runner fails
            on ``max()`` of it.
    """
    if (
        not args.enable_piecewise_cuda_graph
        or graph_off
        or args.enable_torch_compile
        or model.is_mla
    ):
        return 0
    limit = args.piecewise_cuda_graph_max_tokens
    if limit >= _PIECEWISE_STEP_FROM:
        # Above 4096 the list goes on in steps of 256; its largest entry, without building it.
        return limit - (limit - _PIECEWISE_STEP_FROM) % _PIECEWISE_STEP
    sizes = [s for s in _PIECEWISE_SIZES if s <= limit]
    if not sizes:
        raise StartupError("ValueError: max() arg is an empty sequence", "startup")
    return sizes[-1]


# Quantizations FlashInfer's TensorRT-LLM MoE kernels take; with one of them SGLang picks
# those kernels for DeepSeek-V3/R1's routed experts on SM100 when the runner is left to it
# (0.5.5 ServerArgs._handle_model_specific_adjustments, _handle_moe_kernel_config).
_TRTLLM_MOE_QUANT = frozenset({"fp8", "modelopt_fp8", "modelopt_fp4"})
_TRTLLM_MOE_ARCH = "DeepseekV3ForCausalLM"


def moe_runner(
    args: argparse.Namespace, model: _catalog.ModelSpec, layout: _parallel.Layout
) -> str:
    """The kernels of a MoE model's routed experts, as SGLang resolves ``--moe-runner-backend``.

    ``auto`` becomes ``flashinfer_trtllm`` on an SM100 GPU for DeepSeek-V3/R1 with fp8 or
    ModelOpt weights (there SGLang sets ``--quantization`` from the checkpoint, fp8 when it
    names none), unless an all-to-all backend moves the tokens; otherwise the twin models the
    Triton fused-MoE kernels, which ``auto`` means everywhere else. Of the runners set by
    hand, only ``flashinfer_trtllm`` has a rate of its own.

    Returns:
        ``"flashinfer_trtllm"`` or ``"triton"``.

    Raises:
        ValueError: ``flashinfer_trtllm`` without one of its quantizations, as SGLang's
            start-up assertion refuses it.
    """
    quant = args.quantization
    sm100 = args.gpu in _args.SM100_GPUS
    if quant is None and sm100 and model.architecture == _TRTLLM_MOE_ARCH:
        quant = model.quantization or "fp8"
    chosen = args.moe_runner_backend
    if chosen == "flashinfer_trtllm" and quant not in _TRTLLM_MOE_QUANT:
        raise ValueError(
            "AssertionError: modelopt_fp4, modelopt_fp8 or fp8 quantization is required for "
            f"Flashinfer TRTLLM MoE (--moe-runner-backend flashinfer_trtllm, --quantization "
            f"{quant})"
        )
    picked = (
        chosen == "auto"
        and sm100
        and not layout.a2a
        and model.architecture == _TRTLLM_MOE_ARCH
        and quant in _TRTLLM_MOE_QUANT
    )
    return "flashinfer_trtllm" if picked or chosen == "flashinfer_trtllm" else "triton"


def _check_parallel(args: argparse.Namespace, model: _catalog.ModelSpec) -> _parallel.Layout:
    layout = _parallel.layout(args, model)
    needed = layout.gpus
    if needed > args.num_gpus:
        what = (
            f"tp_size = {args.tp_size}"
            if layout.dp_attention
            else f"tp_size * dp_size = {args.tp_size} * {args.dp_size} = {needed}"
        )
        raise StartupError(
            f"RuntimeError: CUDA error: invalid device ordinal. {what} GPUs are needed but "
            f"the host has {args.num_gpus}.",
            "startup",
        )
    if model.heads % layout.attn_tp:
        raise StartupError(
            f"AssertionError: the number of attention heads ({model.heads}) of "
            f"{model.architecture} is not divisible by tp_size ({layout.attn_tp}).",
            "startup",
        )
    if model.is_mla:
        return layout
    kv, tp = model.kv_heads, layout.attn_tp
    if (kv >= tp and kv % tp) or (kv < tp and tp % kv):
        raise StartupError(
            f"AssertionError: the number of key-value heads ({kv}) and tp_size ({tp}) must "
            "divide one another.",
            "startup",
        )
    return layout


def _context_len(args: argparse.Namespace, model: _catalog.ModelSpec) -> int:
    if args.context_length is None:
        return model.max_position_embeddings
    if args.context_length > model.max_position_embeddings:
        raise StartupError(
            f"ValueError: User-specified context_length ({args.context_length}) is greater "
            f"than the derived context_length ({model.max_position_embeddings}). This may lead "
            "to incorrect model outputs or CUDA errors. To allow overriding this maximum, set "
            "the env var SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1",
            "startup",
        )
    return int(args.context_length)


def resolve(args: argparse.Namespace) -> EngineConfig:
    """Resolves auto defaults and plans memory like SGLang 0.5.5's start-up.

    Args:
        args: Validated launch_server arguments.

    Returns:
        The resolved configuration.

    Raises:
        ValueError: ``--model-path`` names no known model.
        StartupError: SGLang would fail to start with these arguments.
    """
    model = _catalog.load_model(args.model_path)
    gpu = _gpus.GPU_TABLE[args.gpu]
    tp, gpu_mib = args.tp_size, gpu.memory_mib
    layout = _check_parallel(args, model)
    speculative = _speculative.resolve(args, model)
    context_len = _context_len(args, model)
    dp_attn = args.dp_size if layout.dp_attention else 0

    chunk = args.chunked_prefill_size
    if chunk is None:
        chunk = memory_tier(gpu_mib).chunked_prefill_size
    graph_max_bs = args.cuda_graph_max_bs
    if graph_max_bs is None:
        graph_max_bs = auto_cuda_graph_max_bs(gpu_mib, tp)
    mem_frac = args.mem_fraction_static
    if mem_frac is None:
        mem_frac = auto_mem_fraction_static(
            gpu_mib, chunk, args.max_prefill_tokens, graph_max_bs, tp, dp_attn
        )
    conservativeness = args.schedule_conservativeness
    if layout.dp_attention:
        # Each DP rank's scheduler gets a share of the chunk.
        chunk = chunk // args.dp_size if chunk > 0 else chunk
        conservativeness *= fact("dp_attn_conservativeness")

    dtype_bytes, weight_bytes = weights(model, args)
    kv_bytes = _facts.KV_CACHE_BYTES.get(args.kv_cache_dtype, dtype_bytes)
    quant = args.quantization or model.quantization
    low_precision = quant in _facts.LOW_PRECISION_GEMM and gpu.fp8_flops > 0
    runner = moe_runner(args, model, layout)
    if model.is_mla:
        # MLA caches one compressed latent per token and layer, shared by all heads: every
        # GPU of an attention group holds it whole.
        kv_cell = (model.kv_lora_rank + model.qk_rope_head_dim) * model.layers * kv_bytes
    else:
        kv_cell = (
            max(1, model.kv_heads // layout.attn_tp) * model.head_dim * model.layers * 2 * kv_bytes
        )

    runtime_mib = fact("runtime_reserve_mib")
    weight_mib = weight_bytes / _MIB
    if weight_mib + runtime_mib > gpu_mib:
        raise oom(
            "Load weight failed. ",
            weight_mib,
            gpu_mib - runtime_mib,
            gpu_mib,
            "The weights do not fit; use a larger --tp-size.",
        )
    rest_mib = mem_frac * gpu_mib - weight_mib - runtime_mib
    max_total = int(rest_mib * _MIB // kv_cell)
    if args.max_total_tokens is not None:
        max_total = min(max_total, args.max_total_tokens)
    if max_total <= 0:
        raise StartupError(
            "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.",
            "oom",
        )
    max_req_len = min(context_len - 1, max_total - 1)
    if max_req_len - 5 <= 0:
        raise StartupError("AssertionError: Memory pool size is too small", "oom")

    # The request pool (ModelRunner.init_memory_pool); the scheduler caps running requests
    # at half the KV pool too when the flag is not given.
    pool_size = args.max_running_requests
    if pool_size is None:
        per_context = int(max_total / context_len * fact("req_pool_per_context"))
        pool_size = int(min(max(per_context, fact("req_pool_min")), fact("req_pool_max")))
    max_running = pool_size
    if args.max_running_requests is None:
        max_running = max(1, min(max_total // 2, pool_size))
    graph_off = args.disable_cuda_graph or not layout.cuda_graph
    graph_bs = () if graph_off else capture_sizes(graph_max_bs, pool_size)
    graph_prefill_max = piecewise_graph_max_tokens(args, model, graph_off)

    chunk_size = None if chunk == -1 else chunk
    # Start-up only exercises batches up to the chunk (or prefill budget) size; a longer
    # unchunked prompt would fail later, at run time, as in SGLang.
    act_tokens = chunk_size or args.max_prefill_tokens
    need_mib = activation_mib(model, tp, act_tokens, dtype_bytes) + fact("graph_mib_per_bs") * (
        graph_bs[-1] if graph_bs else 0
    )
    free_mib = gpu_mib * (1 - mem_frac)
    if need_mib > free_mib:
        if graph_bs:
            raise oom(
                "Capture cuda graph failed: ",
                need_mib,
                free_mib,
                gpu_mib,
                "Possible solutions: 1. set --mem-fraction-static to a smaller value (e.g., "
                "0.8 or 0.7) 2. set --cuda-graph-max-bs to a smaller value (e.g., 16) 3. "
                "disable CUDA graph by --disable-cuda-graph. (Not recommended. Huge "
                "performance loss)",
            )
        raise oom(
            "Warmup forward failed. ",
            need_mib,
            free_mib,
            gpu_mib,
            "Set --mem-fraction-static or --chunked-prefill-size to a smaller value.",
        )

    policy = args.schedule_policy
    if args.disable_radix_cache and policy in ("lpm", "dfs-weight"):
        policy = "fcfs"
    load_s = load_seconds(args)
    capture_s = fact("graph_capture_s") * len(graph_bs)
    startup_s = load_s + capture_s + (fact("torch_compile_s") if args.enable_torch_compile else 0)

    info: dict[str, object] = {k: v for k, v in vars(args).items() if k not in ("fault",)}
    info.update(
        served_model_name=args.served_model_name or args.model_path,
        tokenizer_path=args.tokenizer_path or args.model_path,
        mem_fraction_static=mem_frac,
        chunked_prefill_size=chunk,
        schedule_conservativeness=conservativeness,
        ep_size=layout.ep if model.is_moe else _parallel.effective_ep(args),
        enable_dp_attention=layout.dp_attention,
        disable_cuda_graph=graph_off,
        cuda_graph_max_bs=graph_max_bs,
        max_running_requests=max_running,
        context_length=context_len,
        schedule_policy=policy,
        max_total_num_tokens=max_total,
        max_req_input_len=max_req_len - 5,
        version=VERSION,
        gpu=args.gpu,
        startup_time_scale=args.startup_time_scale or args.time_scale,
        moe_runner_backend=(
            runner if runner == "flashinfer_trtllm" and model.is_moe else args.moe_runner_backend
        ),
    )
    return EngineConfig(
        model=model,
        gpu=gpu,
        tp=tp,
        dp=args.dp_size,
        dtype_bytes=dtype_bytes,
        gemm_low_precision=low_precision,
        kv_bytes=kv_bytes,
        weight_bytes=weight_bytes,
        kv_cell_bytes=kv_cell,
        mem_fraction_static=mem_frac,
        max_total_tokens=max_total,
        max_running_requests=max_running,
        max_prefill_tokens=args.max_prefill_tokens,
        chunked_prefill_size=chunk_size,
        context_len=context_len,
        max_req_input_len=max_req_len - 5,
        cuda_graph_max_bs=graph_max_bs,
        cuda_graph_bs=graph_bs,
        torch_compile_max_bs=args.torch_compile_max_bs if args.enable_torch_compile else 0,
        graph_prefill_max_tokens=graph_prefill_max,
        schedule_policy=policy,
        conservativeness=conservativeness,
        radix_cache=not args.disable_radix_cache,
        mixed_chunk=args.enable_mixed_chunk,
        overlap=not args.disable_overlap_schedule,
        stream_interval=args.stream_interval,
        load_s=load_s,
        capture_s=capture_s,
        startup_s=startup_s,
        server_info=info,
        layout=layout,
        decoder_weight_bytes=weight_format(model, args)[1],
        speculative=speculative,
        moe_runner=runner,
    )


def resolve_server_args(
    server_args: Mapping[str, object], *, gpu: str = "H100", num_gpus: int = 8
) -> dict[str, Any]:
    """Resolves server args like SGLang's start-up, as ``/get_server_info`` reports them.

    Args:
        server_args: launch_server flag values keyed by dest name (``tp_size``, ...).
        gpu: Simulated GPU model (``twin.GPUS``).
        num_gpus: GPUs on the simulated host.

    Returns:
        All arguments with auto values filled in, plus ``max_total_num_tokens``,
        ``max_req_input_len``, ``version`` and ``gpu``.

    Raises:
        ValueError: Unknown flag or invalid value (the message names the flag).
        StartupError: SGLang would fail to start with these arguments.
    """
    args = _args.parse_mapping(server_args, gpu=gpu, num_gpus=num_gpus)
    return dict(resolve(args).server_info)
