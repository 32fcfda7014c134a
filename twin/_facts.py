"""The one table of facts the twin uses: efficiencies, storage sizes, SGLang's own constants.

Every number has a ``source``; SGLang's start-up rules (memory tiers, reserve, CUDA-graph
sizes) are checked against the pinned wheel by tests/twin/test_sglang_source.py; the GPUs
are in ``twin/_gpus.py``. "note" is
the project's research note on SGLang performance (/work/shared/research/sglang-perf.md),
whose own sources are named after it. Numbers marked ``calibrated=True`` were fitted by hand
so that ``benchmarks/twin_fidelity.py`` reproduces the published SGLang anchors; the others
come straight from the cited measurement or code.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from twin._fact_types import FITTED_TO_ANCHORS, SERVER_ARGS_MEMORY, Fact, MemoryTier
from twin._host_facts import HOST_FACTS
from twin._moe_facts import MOE_FACTS
from twin._profile import active_factor

_SERVER_ARGS = SERVER_ARGS_MEMORY

# The CUDA (not NPU) tiers, lowest first; the last one has no upper bound.
MEMORY_TIERS: tuple[MemoryTier, ...] = (
    MemoryTier(20 * 1024, 2048, 8, 8),
    MemoryTier(35 * 1024, 2048, 24, 80),
    MemoryTier(60 * 1024, 4096, 32, 160),
    MemoryTier(90 * 1024, 8192, 256, 512),
    MemoryTier(160 * 1024, 8192, 256, 512),
    MemoryTier(float("inf"), 16384, 512, 512),
)
MEMORY_TIERS_SOURCE = f"{_SERVER_ARGS}: the if/elif chain on gpu_mem"

# Decode batch sizes SGLang captures as CUDA graphs, before its cuda_graph_max_bs and
# request-pool cuts: explicit sizes, then (start, stop, step) ranges, the last open-ended.
CUDA_GRAPH_BS_LIST: tuple[int, ...] = (1, 2, 4, 8, 12)
CUDA_GRAPH_BS_RANGES: tuple[tuple[int, int | None, int], ...] = (
    (16, 257, 8),
    (272, 512, 16),
    (512, None, 32),
)
CUDA_GRAPH_BS_SOURCE = (
    "sglang 0.5.5 srt/server_args.py ServerArgs._generate_cuda_graph_batch_sizes (no "
    "speculative decoding, padding on); model_executor/cuda_graph_runner.py "
    "get_batch_sizes_to_capture adds the request-pool size when the largest size exceeds it"
)

# Bytes per KV-cache element by --kv-cache-dtype ("auto": the activation dtype). SGLang sizes
# its pool with torch's element size of the dtype it picks; float4_e2m1fn_x2 packs two values
# in one byte but reports an element size of 1, and the GQA/MHA cell size does not halve it.
KV_CACHE_BYTES: Mapping[str, float] = MappingProxyType(
    {"fp8_e5m2": 1, "fp8_e4m3": 1, "bf16": 2, "bfloat16": 2, "fp4_e2m1": 1}
)
KV_CACHE_BYTES_SOURCE = (
    "sglang 0.5.5 srt/model_executor/model_runner.py init_memory_pool (dtype by flag) and "
    "profile_max_num_token (cell_size = kv heads x head_dim x layers x 2 x element size)"
)

# Bytes per decoder-layer weight by --quantization, scales included: 8-bit formats keep
# per-channel or per-block scales (negligible); 4-bit integer formats (AWQ, GPTQ and their
# Marlin kernels, bitsandbytes, GGUF q4, auto-round, moe_wna16) add an fp16 scale and a 4-bit
# zero per group of 128, 0.5 + 2.5/128 bytes; NVFP4 an fp8 scale per 16 (0.5 + 1/16); MXFP4
# an 8-bit scale per 32 (0.5 + 1/32). Embeddings and the LM head stay in the checkpoint dtype.
WEIGHT_BYTES_BY_QUANTIZATION: Mapping[str, float] = MappingProxyType(
    {
        **dict.fromkeys(
            ("fp8", "modelopt", "modelopt_fp8", "w8a8_int8", "w8a8_fp8", "compressed-tensors"),
            1.0,
        ),
        **dict.fromkeys(
            ("awq", "gptq", "marlin", "gptq_marlin", "awq_marlin", "bitsandbytes", "gguf",
             "moe_wna16", "auto-round", "qoq", "w4afp8"),
            0.5 + 2.5 / 128,
        ),
        "modelopt_fp4": 0.5 + 1 / 16,
        "petit_nvfp4": 0.5 + 1 / 16,
        "mxfp4": 0.5 + 1 / 32,
    }
)
# Formats whose GEMMs run on 8-bit (or narrower) tensor cores, at the GPU's fp8 peak; the
# weight-only ones dequantize to the activation dtype and run at its peak.
LOW_PRECISION_GEMM: frozenset[str] = frozenset(
    {"fp8", "modelopt", "modelopt_fp8", "w8a8_int8", "w8a8_fp8", "compressed-tensors", "qoq",
     "w4afp8", "modelopt_fp4", "petit_nvfp4", "mxfp4"}
)
WEIGHT_FORMATS_SOURCE = (
    "AutoAWQ / GPTQ checkpoint layout (int4 qweight, fp16 scales and packed int4 zeros per "
    "group of 128); OCP MX spec (MXFP4: E8M0 scale per 32); NVIDIA NVFP4 (E4M3 scale per 16); "
    "sglang 0.5.5 srt/layers/quantization/* for which methods run fp8/int8 GEMMs"
)

_GEMM = "aiconfigurator systems/data/h100_sxm/gemm/sglang/0.5.14/gemm_perf.parquet (note §3)"
_ATTN = "aiconfigurator attention/sglang/0.5.14/context_attention_perf.parquet (note §3)"
_GEN_ATTN = "aiconfigurator .../generation_attention_perf.parquet (note §3)"
_AR = "aiconfigurator comm/sglang/0.5.14/custom_allreduce_perf.parquet (note §3)"
_ANCHORS = FITTED_TO_ANCHORS
_SCHED = "sglang 0.5.5 srt/managers/schedule_policy.py, scheduler.py (note §2)"

FACTS: Mapping[str, Fact] = MappingProxyType(
    {
        # --- GPU efficiency (roofline divisors) ---
        "eta_gemm_max": Fact(
            0.78,
            "",
            "GEMM efficiency reached by large token counts",
            f"{_GEMM}: 0.75-0.81 of peak for T >= 1024",
        ),
        "eta_gemm_fp8_max": Fact(
            0.50,
            "",
            "efficiency of 8-bit GEMMs (share of the fp8 peak) reached by large token counts, "
            "end to end: with the GPU time of quantising their inputs (per-token(-group) "
            "quant kernels, DeepGEMM's column-major TMA-aligned scales) that the GEMM alone "
            "does not show",
            "end-to-end FP8 / bf16 TTFT of the same model on the same host, where the host's "
            "speed cancels: SGLang 0.5.5 Qwen3-14B burst on one H100 0.79 (gpustack "
            "qwen3-14b/h100.md), vLLM Qwen3-8B 8,192-token prompt at one user 0.81 "
            "(tgarg01/silybench-data), vLLM Qwen3-8B burst 0.80 static / 0.86 dynamic "
            "(gpustack the-impact-of-quantization-on-vllm); 0.50 gives 0.82 on an 8k prompt. "
            "The GEMMs alone reach more: aiconfigurator systems/data/h100_sxm/gemm/sglang/"
            "0.5.14 on Qwen3-14B's shapes, block fp8 (DeepGEMM) 1140-1270 TF and per-tensor "
            "(sgl-kernel fp8_scaled_mm) 960-1255 TF of 1979 at T = 1024-16384 (0.62 was "
            "taken from them until 2026-12-06, an 8k ratio of 0.71)",
            calibrated=True,
        ),
        "gemm_half_tokens": Fact(
            100.0,
            "tokens",
            "tokens at which GEMM efficiency is half of eta_gemm_max",
            f"{_GEMM}: 0.45-0.70 at T = 256-512 (fit of eta = max*T/(T+half))",
        ),
        "eta_mem": Fact(
            0.75,
            "",
            "weight-streaming efficiency of HBM",
            f"{_ANCHORS}, inside note §3's range: 2.0-2.8 TB/s of 3.35 on H100, ~1.5 of 2.04 "
            "on A100 (Vidur, aiconfigurator)",
            calibrated=True,
        ),
        "eta_mem_tp_loss": Fact(
            0.10,
            "",
            "relative weight-streaming loss per extra TP rank: eta/(1+loss*(tp-1))",
            "Vidur H100 7B: ~2.5-2.66 TB/s at tp1 but ~2.0 TB/s at tp4 (note §3)",
        ),
        "eta_kv": Fact(
            0.80,
            "",
            "KV-cache read efficiency of decode attention",
            f"{_GEN_ATTN}: 2.3-3.1 TB/s effective on H100",
        ),
        "attn_layer_floor_s": Fact(
            7e-6,
            "s",
            "decode attention time per layer call that does not scale with KV",
            f"{_GEN_ATTN}: floor ~7-14 us per layer call",
        ),
        "eta_attn_max": Fact(
            0.68,
            "",
            "prefill attention efficiency reached by long chunks",
            f"{_ATTN}: 290 TF at 1k tokens, 540 at 4k, 580-620 at 8-16k",
        ),
        "attn_half_tokens": Fact(
            1300.0,
            "tokens",
            "chunk length at which prefill attention efficiency halves",
            f"{_ATTN} (fit of eta = max*n/(n+half))",
        ),
        "eta_link": Fact(
            0.80,
            "",
            "all-reduce bus bandwidth as a fraction of the link bandwidth",
            "Vidur data/profiling/network/h100_dgx/all_reduce.csv: 270-365 GB/s of 450 (note §3)",
        ),
        "ar_latency_graph_s": Fact(
            3e-6,
            "s",
            "all-reduce latency inside a CUDA graph (custom all-reduce)",
            f"{_AR}: 2.6-3.7 us for <= 8k elements",
        ),
        "ar_latency_eager_s": Fact(
            30e-6,
            "s",
            "all-reduce latency outside CUDA graphs (prefill, eager decode)",
            f"{_AR}: eager ~30 us floor; Vidur NCCL 25-45 us",
        ),
        "ar_latency_pcie_s": Fact(
            25e-6,
            "s",
            "extra all-reduce latency over PCIe (no NVLink)",
            "derived: Vidur NCCL floor 25-45 us (note §3) as the PCIe minimum",
        ),
        # --- fixed costs per forward ---
        "layer_overhead_s": Fact(
            8e-6,
            "s",
            "per layer and forward: norms, rope, activation, kernel gaps",
            f"{_ANCHORS} (PR #40346 0.6B TPOT, vllm_060 A100/H100 TPOT)",
            calibrated=True,
        ),
        "step_overhead_s": Fact(
            0.4e-3,
            "s",
            "per forward on the GPU: embedding, sampling, logits processing",
            f"{_ANCHORS}; note §3: per-step fixed cost 'roughly 1-2 ms' incl. CPU",
            calibrated=True,
        ),
        "eager_layer_penalty_s": Fact(
            100e-6,
            "s",
            "extra time per layer of a decode step that runs without a CUDA graph",
            "sglang PR #40346: (5.44 - 2.64) ms / 28 layers when batches exceeded max_bs",
        ),
        "compile_layer_factor": Fact(
            0.6,
            "",
            "layer_overhead_s multiplier for batches under --torch-compile-max-bs",
            "derived: fused small kernels; note §1 '--enable-torch-compile: faster small-batch'",
        ),
        "prefill_overhead_s": Fact(
            1.0e-3,
            "s",
            "per prefill forward: eager launches, metadata, sampling",
            "derived: eager launches and metadata of an extend batch, ~1 ms",
        ),
        "prefill_dispatch_layer_s": Fact(
            0.5e-3,
            "s",
            "host time to dispatch one dense decoder layer of an eager prefill forward "
            "(Python and kernel launches): the forward's GPU time cannot be shorter than the "
            "sum over its layers",
            f"{_ANCHORS}: Llama-3.1-70B 4xH100 at 4-8 req/s (TTFT p50 54-58 ms, 43-45 without "
            "it), Qwen3-8B 1xH100 at 4 users; aiconfigurator charges vLLM 0.8 ms a layer for "
            "the same dispatch (sdk/backends/vllm_backend.py _prefill_dispatch_overhead_ms, "
            "fitted to its measured corpus)",
            calibrated=True,
        ),
        "prefill_dispatch_moe_layer_s": Fact(
            1.0e-3,
            "s",
            "as prefill_dispatch_layer_s for a mixture-of-experts layer (router, top-k, "
            "token permutation and grouped GEMMs add launches)",
            f"{_ANCHORS}: Qwen3-235B-A22B 8xB200 one-user TTFT 92-99 ms for prompts of at "
            "most 1,000 tokens over its 94 MoE layers (sgl-cookbook Qwen3.md), where its GPU "
            "work is ~30 ms",
            calibrated=True,
        ),
        "prefill_dispatch_mla_layer_s": Fact(
            1.7e-3,
            "s",
            "as prefill_dispatch_layer_s for a layer of an MLA model (DeepSeek-V3/R1: low-rank "
            "q/kv projections with their norms, about twice a GQA MoE layer's launches)",
            f"{_ANCHORS}: DeepSeek-R1-0528 8xB200 one-user TTFT 126 ms for prompts of at most "
            "1,000 tokens over its 61 layers (sgl-cookbook DeepSeek-R1.md, 1k/8k run): 2 ms a "
            "layer, less the share of its 482 fp8 GEMMs (prefill_dispatch_quant_gemm_s)",
            calibrated=True,
        ),
        "prefill_dispatch_quant_gemm_s": Fact(
            40e-6,
            "s",
            "host time an eager prefill adds for each GEMM with 8-bit (or narrower) "
            "activations: the per-token(-group) quantisation kernel launched before it, its "
            "two output tensors and the wrapper (sglang 0.5.5 srt/layers/quantization/"
            "fp8_utils.py deepgemm_w8a8_block_fp8_linear_with_fallback: "
            "sglang_per_token_group_quant_fp8, then the GEMM)",
            f"{_ANCHORS}: Qwen3-8B-FP8 against Qwen3-8B on one H100 at 4 users, same lab and "
            "SGLang 0.5.3.post3 (gpustack h100-latency.md): TTFT p50 33.38 against 27.25 ms, "
            "the fp8 run slower though its GEMMs are faster; 36 layers x 4 GEMMs. About one "
            "op's host time: prefill_dispatch_layer_s is 0.5 ms over a layer's ~12 ops",
            calibrated=True,
        ),
        "decode_moe_layer_floor_s": Fact(
            100e-6,
            "s",
            "least time of a MoE layer in a CUDA-graph decode step, whatever it reads: ~15-20 "
            "kernels (attention, router, top-k, fused MoE, two all-reduces, norms) at their "
            "minimum durations and the gaps between them",
            f"{_ANCHORS}: Qwen3-235B-A22B 8xB200 decodes at a batch of one in 10.12 ms over 94 "
            "MoE layers (sgl-cookbook Qwen3.md); aiconfigurator's B200 SGLang tables put that "
            "layer's kernels alone at ~65 us at one token (fused MoE 19.7, qkv 7.1, o 4.9, "
            "router 4.6, attention ~8.3, two all-reduces ~5 each)",
            calibrated=True,
        ),
        # --- memory ---
        "runtime_reserve_mib": Fact(
            1024.0,
            "MiB",
            "CUDA context, NCCL and allocator memory outside weights and KV",
            "note §2: tokens ~= (mem_frac*G - W - ~1 GiB runtime) / cell",
        ),
        "graph_mib_per_bs": Fact(
            2.0,
            "MiB",
            "CUDA-graph memory per captured batch size unit",
            "note §1: '--cuda-graph-max-bs ... Reserves about 2 MB per bs'",
        ),
        "activation_bytes_per_elem": Fact(
            2.5,
            "",
            "activation bytes per (token x width) element during a prefill chunk",
            "derived: bf16 activations of one layer kept live, x1.25 for the allocator",
        ),
        "attn_workspace_mib": Fact(
            512.0,
            "MiB",
            "attention backend workspace (flashinfer/fa3)",
            "derived: flashinfer default workspace buffer is hundreds of MiB",
        ),
        # --- auto --mem-fraction-static: memory kept out of weights + KV pool ---
        "reserve_base_mib": Fact(
            512.0,
            "MiB",
            "constant metadata (attention backend) reserved by auto mem_fraction_static",
            _SERVER_ARGS,
        ),
        "reserve_mib_per_prefill_token": Fact(
            1.5,
            "MiB/token",
            "activations reserved per token of the chunk (of max_prefill_tokens when "
            "chunked prefill is off, -1)",
            _SERVER_ARGS,
        ),
        "reserve_min_prefill_tokens": Fact(
            2048.0,
            "tokens",
            "floor of the token count the activation reserve is computed from",
            _SERVER_ARGS,
        ),
        "reserve_mib_per_graph_bs": Fact(
            2.0,
            "MiB/request",
            "CUDA-graph buffers reserved per unit of cuda_graph_max_bs",
            _SERVER_ARGS,
        ),
        "reserve_mib_per_8_ranks": Fact(
            1024.0,
            "MiB",
            "reserve for large parallel sizes, times tp_size * pp_size / 8",
            _SERVER_ARGS,
        ),
        "reserve_floor_mib": Fact(
            10 * 1024.0,
            "MiB",
            "least reserve on GPUs above reserve_floor_gpu_mib",
            _SERVER_ARGS,
        ),
        "reserve_floor_gpu_mib": Fact(
            60 * 1024.0,
            "MiB",
            "GPU memory above which reserve_floor_mib applies",
            _SERVER_ARGS,
        ),
        "cuda_graph_bs_tp_large": Fact(
            4.0,
            "ranks",
            "tp_size from which a memory tier's cuda_graph_max_bs_tp4 applies",
            _SERVER_ARGS,
        ),
        "req_pool_per_context": Fact(
            512.0,
            "requests",
            "auto request-pool size per KV pool's worth of context lengths",
            "sglang 0.5.5 srt/model_executor/model_runner.py ModelRunner.init_memory_pool",
        ),
        "req_pool_min": Fact(
            2048.0,
            "requests",
            "least auto request-pool size",
            "sglang 0.5.5 srt/model_executor/model_runner.py ModelRunner.init_memory_pool",
        ),
        "req_pool_max": Fact(
            4096.0,
            "requests",
            "largest auto request-pool size",
            "sglang 0.5.5 srt/model_executor/model_runner.py ModelRunner.init_memory_pool",
        ),
        # --- startup time ---
        "init_s": Fact(
            8.0,
            "s",
            "process start, imports, NCCL init before weight loading",
            "derived: typical sglang startup logs",
        ),
        "load_bytes_per_s": Fact(
            2e9,
            "B/s",
            "weight loading speed per GPU (safetensors from page cache)",
            "derived: spec target '~20-60 s for 8B' incl. graph capture",
        ),
        "graph_capture_s": Fact(
            0.3,
            "s",
            "CUDA graph capture time per captured batch size",
            "derived: 'Capture cuda graph end. Time elapsed' ~10 s for 36 sizes",
        ),
        "torch_compile_s": Fact(
            60.0,
            "s",
            "extra startup for --enable-torch-compile",
            "note §1: '--enable-torch-compile ... much longer startup'",
        ),
        # --- SGLang scheduler constants (0.5.5) ---
        "init_new_token_ratio": Fact(
            0.7,
            "",
            "initial new_token_ratio (times --schedule-conservativeness)",
            f"{_SCHED}: SGLANG_INIT_NEW_TOKEN_RATIO",
        ),
        "min_new_token_ratio_factor": Fact(
            0.14,
            "",
            "min new_token_ratio as a fraction of the initial ratio",
            _SCHED,
        ),
        "new_token_ratio_decay_steps": Fact(
            600.0,
            "steps",
            "decode steps for the ratio to decay from init to min",
            _SCHED,
        ),
        "clip_max_new_tokens": Fact(
            4096.0,
            "tokens",
            "max_new_tokens clip in the admission estimate",
            _SCHED,
        ),
        "retract_decode_steps": Fact(
            20.0,
            "steps",
            "decode steps of headroom a retraction frees per remaining request",
            "sglang 0.5.5 schedule_batch.py retract_decode (note §2)",
        ),
        "lpm_fcfs_queue_len": Fact(
            128.0,
            "requests",
            "queue length above which lpm falls back to fcfs",
            _SCHED,
        ),
        "force_stream_interval": Fact(
            50.0,
            "tokens",
            "a non-streamed request is output (to the tokenizer, its metrics) every N tokens",
            "sglang 0.5.5 srt/managers/scheduler_output_processor_mixin.py "
            "stream_output_generation (DEFAULT_FORCE_STREAM_INTERVAL)",
        ),
        "health_poll_s": Fact(
            1.0,
            "s",
            "/health sleeps this long between looks for any output since it started",
            "sglang 0.5.5 srt/entrypoints/http_server.py health_generate",
        ),
        "health_timeout_s": Fact(
            20.0,
            "s",
            "/health answers 503 when no output came for this long",
            "sglang 0.5.5 srt/entrypoints/http_server.py HEALTH_CHECK_TIMEOUT "
            "(SGLANG_HEALTH_CHECK_TIMEOUT default)",
        ),
        "warmup_delay_s": Fact(
            1.0,
            "s",
            "the warm-up thread sleeps this long before it first asks /get_model_info",
            "sglang 0.5.5 srt/entrypoints/http_server.py _execute_server_warmup",
        ),
        "warmup_max_new_tokens": Fact(
            8.0,
            "tokens",
            "max_new_tokens of the warm-up /generate request sent before the server is Up",
            "sglang 0.5.5 srt/entrypoints/http_server.py _execute_server_warmup",
        ),
        "clock_lag_tolerance_s": Fact(
            5e-3,
            "s (wall)",
            "lag of a replica loop behind its virtual clock counted as 'behind' by "
            "twin:clock_behind_seconds_total: above asyncio's usual timer oversleep (~1 ms), "
            "below the wall length of a decode step at the time scales the tuner uses",
            "twin's own choice (issue 12, host health)",
        ),
        "decode_log_interval": Fact(
            40.0,
            "steps",
            "decode steps between 'Decode batch' log lines",
            "sglang 0.5.5 --decode-log-interval default (note §2)",
        ),
        **HOST_FACTS,
        **MOE_FACTS,
        "spec_accept_eagle": Fact(
            0.75,
            "probability",
            "chance EAGLE's target accepts a drafted token, given the ones before (effective "
            "rate of its draft tree): 3.3 tokens a step over 5 steps",
            "sglang#4247 (H100, Llama-3.1-8B, MT-bench): EAGLE-2 at 8 steps accepts 3.76 "
            "tokens a step (a = 0.755); acceptance depends on the prompts (MT-bench is chat)",
        ),
        "spec_accept_eagle3": Fact(
            0.87,
            "probability",
            "chance EAGLE-3's target accepts a drafted token: 4.4 tokens a step over 5 steps",
            "sglang#4247 (H100, Llama-3.1-8B, MT-bench): 5.39 tokens at 8 steps (a = 0.86), "
            "4.68 at 5 (0.90); sglang#4716 (Llama-3.3-70B, TP8): 5.88 at 8 (0.89); the same "
            "thread measured 2.42 with another prompt: acceptance depends on the prompts",
        ),
        "spec_accept_mtp": Fact(
            0.85,
            "probability",
            "chance DeepSeek's multi-token-prediction module (NEXTN) has a drafted token "
            "accepted",
            "DeepSeek-V3 technical report (arXiv 2412.19437) §5.4.3: acceptance of the second "
            "predicted token between 85 % and 90 %",
        ),
        "spec_accept_standalone": Fact(
            0.6,
            "probability",
            "chance a standalone draft model's token is accepted",
            "twin's own order-of-magnitude choice; not measured",
        ),
        "spec_accept_ngram": Fact(
            0.4,
            "probability",
            "chance an n-gram lookup's token is accepted (prompt-copying workloads accept more)",
            "twin's own order-of-magnitude choice; not measured",
        ),
        "spec_standalone_draft_share": Fact(
            0.125,
            "",
            "a standalone draft model's forward as a share of the target's decoder layers",
            "twin's own choice: e.g. Llama-3.2-1B (16 layers of 2048) drafting for "
            "Llama-3.1-8B (32 of 4096) costs about an eighth",
        ),
    }
)


def gemm_efficiency(low_precision: bool) -> float:
    """The GEMM efficiency large token counts reach, of the peak the GEMMs run at.

    Args:
        low_precision: Whether the GEMMs run on 8-bit tensor cores (``EngineConfig``'s
            ``gemm_low_precision``).

    Returns:
        ``eta_gemm_fp8_max`` or ``eta_gemm_max``, with the active profile's factor.
    """
    return fact("eta_gemm_fp8_max" if low_precision else "eta_gemm_max")


def fact(name: str) -> float:
    """Returns the value of one fact.

    Args:
        name: Key of ``FACTS``.

    Returns:
        The fact's value, times the active profile's factor (see ``twin.using_profile``).
    """
    return FACTS[name].value * active_factor(name)
