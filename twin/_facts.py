"""The one table of facts the twin's performance model uses: GPU specs, efficiencies, constants.

Every number has a ``source``. "note" is the project's research note on SGLang performance
(/work/shared/research/sglang-perf.md), whose own sources are named after it. Numbers marked
``calibrated=True`` were fitted by hand so that ``benchmarks/twin_fidelity.py`` reproduces the
published SGLang anchors; the others come straight from the cited measurement or code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType


@dataclasses.dataclass(frozen=True)
class GpuSpec:
    """Dense peak numbers of one GPU model.

    Attributes:
        name: Name accepted by ``--gpu``.
        bf16_flops: Dense bf16 tensor-core peak, FLOP/s.
        fp8_flops: Dense fp8 peak, FLOP/s (0 when the GPU has no fp8 tensor cores).
        hbm_bytes_per_s: Memory bandwidth, bytes/s.
        memory_mib: Capacity as torch reports it, MiB (SGLang's memory tiers use this).
        link_bytes_per_s: GPU-to-GPU bandwidth per direction, bytes/s.
        nvlink: True for NVLink/NVSwitch, False for PCIe.
        source: Where the numbers come from.
    """

    name: str
    bf16_flops: float
    fp8_flops: float
    hbm_bytes_per_s: float
    memory_mib: int
    link_bytes_per_s: float
    nvlink: bool
    source: str


@dataclasses.dataclass(frozen=True)
class Fact:
    """One number of the performance model.

    Attributes:
        value: The number, in ``unit``.
        unit: Unit of ``value``.
        meaning: What the model uses it for.
        source: Measurement, code or derivation it comes from.
        calibrated: True when fitted to the published end-to-end anchors.
    """

    value: float
    unit: str
    meaning: str
    source: str
    calibrated: bool = False


_AIC = "aiconfigurator aic-core systems/*.yaml via note §4"

GPU_TABLE: Mapping[str, GpuSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            GpuSpec(
                "H100",
                989e12,
                1979e12,
                3.35e12,
                81559,
                450e9,
                True,
                f"{_AIC} (H100 SXM); 81559 MiB torch-reported (note §1)",
            ),
            GpuSpec(
                "H100-PCIe",
                756.5e12,
                1513e12,
                2.0e12,
                81559,
                64e9,
                False,
                f"{_AIC} (H100 PCIe, PCIe5 64 GB/s)",
            ),
            GpuSpec(
                "H200",
                989e12,
                1979e12,
                4.8e12,
                143771,
                450e9,
                True,
                f"{_AIC} (H200 SXM); 143771 MiB torch-reported (note §1)",
            ),
            GpuSpec(
                "B200",
                2250e12,
                4500e12,
                7.7e12,
                184320,
                900e9,
                True,
                f"{_AIC} (B200, 180 GiB)",
            ),
            GpuSpec(
                "A100-80G",
                312e12,
                0.0,
                2.039e12,
                81920,
                300e9,
                True,
                f"{_AIC} (A100 SXM 80G); 81920 MiB matches the note's derived mem fraction 0.836",
            ),
            GpuSpec(
                "A100-40G",
                312e12,
                0.0,
                1.555e12,
                40960,
                300e9,
                True,
                "NVIDIA A100 datasheet (40 GB HBM2, 1555 GB/s); peaks as A100-80G",
            ),
            GpuSpec(
                "L40S",
                362e12,
                733e12,
                0.864e12,
                46068,
                32e9,
                False,
                f"{_AIC} (L40S, 48 GB, PCIe4 x16 32 GB/s)",
            ),
            GpuSpec(
                "RTX-5090",
                209.5e12,
                419e12,
                1.792e12,
                32607,
                64e9,
                False,
                "NVIDIA RTX Blackwell whitepaper (bf16 dense with fp32 accumulate, GDDR7 "
                "1792 GB/s, 32 GB); only used by the sglang PR #40346 anchor",
            ),
        )
    }
)

_GEMM = "aiconfigurator systems/data/h100_sxm/gemm/sglang/0.5.14/gemm_perf.parquet (note §3)"
_ATTN = "aiconfigurator attention/sglang/0.5.14/context_attention_perf.parquet (note §3)"
_GEN_ATTN = "aiconfigurator .../generation_attention_perf.parquet (note §3)"
_AR = "aiconfigurator comm/sglang/0.5.14/custom_allreduce_perf.parquet (note §3)"
_ANCHORS = "fitted to benchmarks/twin_fidelity.py anchors (note §4)"
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
        # --- CPU side (hidden by the overlap scheduler while below GPU time) ---
        "cpu_step_s": Fact(
            0.5e-3,
            "s",
            "scheduler CPU time per iteration",
            "derived: lmsys 2024-12-04 blog, overlap gave 1.1x (CPU ~10% of a step)",
        ),
        "cpu_per_req_s": Fact(
            40e-6,
            "s",
            "scheduler/detokenizer CPU time per running request and step",
            f"{_ANCHORS}: the 0.3.0 offline runs (no overlap scheduler then)",
            calibrated=True,
        ),
        "cpu_stream_s": Fact(
            10e-6,
            "s",
            "CPU time per streamed chunk and request (divided by --stream-interval)",
            "derived: note §1 'higher --stream-interval raises throughput'",
        ),
        "frontend_s": Fact(
            2e-3,
            "s",
            "HTTP + tokenizer + IPC before a request reaches the scheduler",
            "note §3: TTFT includes 'tokenizer/HTTP (~ms)'",
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
        "decode_log_interval": Fact(
            40.0,
            "steps",
            "decode steps between 'Decode batch' log lines",
            "sglang 0.5.5 --decode-log-interval default (note §2)",
        ),
    }
)


def fact(name: str) -> float:
    """Returns the value of one fact.

    Args:
        name: Key of ``FACTS``.

    Returns:
        The fact's value.
    """
    return FACTS[name].value
