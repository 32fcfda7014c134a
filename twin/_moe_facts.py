"""The facts of the mixture-of-experts and data-parallel-attention model (issue 14), with
their units and sources; merged into ``twin._facts.FACTS``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from twin._fact_types import SERVER_ARGS_MEMORY, Fact

__all__ = ["MOE_FACTS"]

_SERVER_ARGS = SERVER_ARGS_MEMORY

MOE_FACTS: Mapping[str, Fact] = MappingProxyType(
    {
        "fp8_block_scale_bytes": Fact(
            4.0 / (128 * 128),
            "bytes/weight",
            "fp32 scale per 128 x 128 block of fp8 block-quantized weights (DeepSeek-V3/R1)",
            "DeepSeek-V3 config.json quantization_config weight_block_size [128, 128]; "
            "weight_scale_inv is float32",
        ),
        "dp_attn_reserve_mib_per_bs_rank": Fact(
            3.0,
            "MiB",
            "extra auto-mem-fraction reserve per cuda_graph_max_bs x dp_size with dp-attention",
            _SERVER_ARGS,
        ),
        "dp_attn_reserve_large_mib_per_bs_rank": Fact(
            1.5,
            "MiB",
            "further reserve per cuda_graph_max_bs x dp_size when cuda_graph_max_bs is above "
            "dp_attn_reserve_large_bs",
            _SERVER_ARGS,
        ),
        "dp_attn_reserve_large_bs": Fact(
            300.0,
            "requests",
            "cuda_graph_max_bs above which dp-attention reserves the further memory",
            _SERVER_ARGS,
        ),
        "dp_attn_conservativeness": Fact(
            0.3,
            "",
            "factor on --schedule-conservativeness with dp-attention",
            "sglang 0.5.5 srt/server_args.py ServerArgs._handle_data_parallelism",
        ),
        "moe_flops_per_hbm_byte": Fact(
            20.0,
            "FLOP/byte",
            "routed experts' rate at large token counts, as FLOPs per byte of HBM bandwidth: "
            "fused MoE GEMMs of few rows per expert, with routing, token permutation and "
            "activation quantisation, run at a rate that follows HBM bandwidth, not peak "
            "FLOPs (what a prefill achieves; decode stays weight-bound)",
            "fitted to the mean TTFT of the three ShareGPT bursts of benchmarks/"
            "fidelity_anchors.yaml (DeepSeek-R1 fp8 8xH200: +8 %, Qwen3-235B-A22B bf16 "
            "8xH100: 0 %, 8xA100: -12 %); the same lab measured Qwen3-235B's TTFT 1.80x "
            "longer on A100 than on H100, where HBM bandwidth differs 1.64x and bf16 peak "
            "3.17x (gpustack qwen3-235b-a22b/a100.md, h100.md)",
            calibrated=True,
        ),
        "moe_trtllm_rate_factor": Fact(
            1.75,
            "",
            "routed-expert rate of SGLang's flashinfer_trtllm MoE runner (SM100, fp8 or "
            "ModelOpt weights) as a multiple of the Triton fused-MoE rate that "
            "moe_flops_per_hbm_byte sets",
            "read off sgl-cookbook docs/autoregressive/DeepSeek/DeepSeek-R1.md@c8a00b9 "
            "(DeepSeek-R1-0528 fp8, 8xB200, 0.5.6.post1), 8000/1000 one-user run replayed: "
            "its TTFT p50 154.96 ms and p99 240.92 ms fall at prompts of 4,519 and ~7,925 "
            "tokens, 25.2 us a token, where the Triton rate gives 41.7 us and x1.75 gives "
            "25.2 us",
            calibrated=True,
        ),
        "a2a_dispatch_bytes": Fact(
            1.0,
            "bytes/element",
            "bytes per hidden element DeepEP dispatches to an expert (fp8 dispatch)",
            "DeepEP README (deepseek-ai/DeepEP): FP8 dispatch, BF16 combine",
        ),
        "a2a_combine_bytes": Fact(
            2.0,
            "bytes/element",
            "bytes per hidden element DeepEP combines back from an expert (bf16)",
            "DeepEP README (deepseek-ai/DeepEP): FP8 dispatch, BF16 combine",
        ),
        "a2a_latency_s": Fact(
            20e-6,
            "s",
            "fixed latency of one all-to-all (dispatch or combine) inside one node",
            "twin's own order-of-magnitude choice for an intranode NVLink all-to-all "
            "(kernel launch + barrier); not fitted to a measurement",
        ),
    }
)
