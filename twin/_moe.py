"""Step-time coefficients of mixture-of-experts, MLA and dp-attention configurations.

``PerfModel`` keeps one roofline for every model: ``max(weight streaming, GEMM compute)`` plus
attention, collectives and fixed costs. This module computes its coefficients where they
differ from a dense, tensor-parallel model:

* routed experts: a forward of ``T`` tokens, each choosing ``k`` of ``E`` experts, touches
  ``E * (1 - (1 - k/E)^T)`` distinct experts in expectation (uniform routing); only their
  weights are streamed. Per GPU that is the same fraction of its expert bytes under TP
  (a slice of every expert) and EP (whole experts, ``E / ep`` of them). GEMM FLOPs count the
  ``k`` active experts (plus shared ones) per token;
* MLA: prefill attention runs on decompressed heads (``qk_nope + qk_rope`` query/key width,
  ``v_head_dim`` values); decode attention reads the compressed latent once per token and
  layer and multiplies it with every head (absorbed weights), so it is bounded by the larger
  of HBM time and FLOP time;
* dp-attention: each of the ``dp`` ranks runs attention on its own batch over ``tp / dp``
  GPUs; MLP/MoE layers run over all ``tp`` GPUs on the tokens of every rank (assumed equally
  loaded), gathered before and scattered after each layer;
* expert parallelism with an all-to-all backend (DeepEP): tokens reach their ``k`` experts
  by dispatch (fp8) and come back by combine (bf16) instead of the MLP all-reduce.

Per-token coefficients are per token of one replica's (one DP rank's) batch.
"""

from __future__ import annotations

import dataclasses

from twin._facts import fact, gemm_efficiency
from twin._resolve import EngineConfig


def touched_experts(experts: int, per_token: int, tokens: float) -> float:
    """Expected distinct experts chosen by ``tokens`` tokens, each picking ``per_token``.

    Args:
        experts: Routed experts ``E``.
        per_token: Experts each token picks, ``k``.
        tokens: Tokens in the forward, ``T``.

    Returns:
        ``E * (1 - (1 - k/E)^T)``.
    """
    if experts <= 0 or tokens <= 0:
        return 0.0
    return experts * (1.0 - (1.0 - per_token / experts) ** tokens)


@dataclasses.dataclass(frozen=True)
class SparseCoeffs:
    """Coefficients that replace or add to the dense ones of ``PerfModel``.

    Attributes:
        fixed_weights_s: Seconds to stream the weights every forward reads (all but routed
            experts).
        routed_weights_s: Seconds to stream all of one GPU's routed-expert weights.
        tokens_per_token: MoE tokens per token of the replica's batch (``dp`` with
            dp-attention, else 1).
        g_body: GEMM seconds per token of the replica's batch (decoder layers).
        g_moe: Further seconds per token of the replica's batch that routed experts take
            beyond a dense GEMM of their FLOPs, once compute-bound.
        g_lm: GEMM seconds per token of the LM head.
        attn_a: Prefill-attention coefficient (seconds per query-key pair, before the
            efficiency ramp).
        kv_per_token: Decode-attention seconds per cached token.
        ar_calls: Collective calls per forward.
        ar_per_token: Mean collective seconds per token per call.
        fixed_s: Extra fixed seconds per forward (all-to-all latency).
    """

    fixed_weights_s: float
    routed_weights_s: float
    tokens_per_token: float
    g_body: float
    g_moe: float
    g_lm: float
    attn_a: float
    kv_per_token: float
    ar_calls: float
    ar_per_token: float
    fixed_s: float

    def weights_s(self, tokens: float, experts: int, per_token: int) -> float:
        """Weight-streaming seconds of a forward of ``tokens`` replica tokens."""
        if not experts:
            return self.fixed_weights_s
        touched = touched_experts(experts, per_token, tokens * self.tokens_per_token)
        return self.fixed_weights_s + self.routed_weights_s * touched / experts


def coefficients(config: EngineConfig, eta_mem: float) -> SparseCoeffs:
    """The sparse/MLA/dp-attention coefficients of one configuration.

    Args:
        config: Resolved configuration whose model is MoE or MLA, or with dp-attention.
        eta_mem: Achieved fraction of HBM bandwidth for weight streaming.

    Returns:
        The coefficients.
    """
    model, gpu, tp = config.model, config.gpu, config.tp
    layout = config.layout
    attn_tp = layout.attn_tp
    dp = config.dp if layout.dp_attention else 1
    hbm = gpu.hbm_bytes_per_s
    gemm = config.gemm_flops * gemm_efficiency(config.gemm_low_precision)

    # Routed-expert share of the per-GPU weight bytes; the rest is read every forward.
    routed = model.routed_params * config.decoder_weight_bytes / tp
    fixed = config.weight_bytes - routed

    attn = model.layers * model.attn_params
    ffn_active = model.active_decoder_params - attn
    g_body = 2.0 * (attn / attn_tp + ffn_active * dp / tp) / gemm
    # Routed experts run as grouped GEMMs of a few rows per expert (fused MoE kernels, with
    # routing, token permutation and activation quantisation around them), far below a dense
    # GEMM's rate once a forward is compute-bound (prefill), and at a rate that follows the
    # GPU's HBM bandwidth, not its peak FLOPs. The shortfall is a cost per token on top of
    # the dense ramp, so weight-bound decode steps keep the dense ramp.
    routed_flops = 2.0 * model.routed_active_params * dp / tp
    moe_rate = hbm * fact("moe_flops_per_hbm_byte")
    if config.moe_runner == "flashinfer_trtllm":
        moe_rate *= fact("moe_trtllm_rate_factor")
    g_moe = max(0.0, routed_flops / moe_rate - routed_flops / gemm)
    g_lm = 2.0 * model.embedding_params * dp / tp / gemm

    eta_attn = gpu.bf16_flops * fact("eta_attn_max")
    heads = model.heads / attn_tp
    if model.is_mla:
        qk = model.qk_nope_head_dim + model.qk_rope_head_dim
        attn_a = 2.0 * model.layers * heads * (qk + model.v_head_dim) / eta_attn
        latent = model.kv_lora_rank + model.qk_rope_head_dim
        flops = 2.0 * model.layers * heads * (latent + model.kv_lora_rank)
        kv_per_token = max(
            config.kv_cell_bytes / (hbm * fact("eta_kv")), flops / eta_attn
        )
    else:
        attn_a = 4.0 * model.layers * heads * model.head_dim / eta_attn
        kv_per_token = config.kv_cell_bytes / (hbm * fact("eta_kv"))

    link = gpu.link_bytes_per_s * fact("eta_link")
    hidden_bytes = model.hidden * config.dtype_bytes
    calls = weighted = 0.0
    if attn_tp > 1:  # attention output all-reduce inside the attention group
        calls += model.layers
        weighted += model.layers * hidden_bytes * 2.0 * (attn_tp - 1) / attn_tp / link
    mlp_layers = model.layers - (model.moe_layers if layout.a2a else 0)
    if tp > 1 and mlp_layers:
        # All-reduce over tp, or with dp-attention the gather + scatter of every rank's
        # tokens: the same bytes, 2 (tp - 1) / tp per gathered token.
        calls += mlp_layers
        weighted += mlp_layers * hidden_bytes * 2.0 * (tp - 1) / tp * dp / link
    fixed_s = 0.0
    if layout.a2a and layout.ep > 1:
        ep = layout.ep
        per_elem = fact("a2a_dispatch_bytes") + fact("a2a_combine_bytes")
        moved = model.experts_per_token * model.hidden * per_elem * (ep - 1) / ep
        # Each GPU sends its share of the step's tokens (tokens * dp / tp of them).
        weighted += model.moe_layers * moved * dp / tp / link
        fixed_s = 2.0 * model.moe_layers * fact("a2a_latency_s")
    return SparseCoeffs(
        fixed_weights_s=fixed / (hbm * eta_mem),
        routed_weights_s=routed / (hbm * eta_mem),
        tokens_per_token=float(dp),
        g_body=g_body,
        g_moe=g_moe,
        g_lm=g_lm,
        attn_a=attn_a,
        kv_per_token=kv_per_token,
        ar_calls=calls,
        ar_per_token=weighted / calls if calls else 0.0,
        fixed_s=fixed_s,
    )

