"""Roofline step times of one replica: prefill/extend forwards and decode steps.

A forward's GPU time is ``max(weight streaming, GEMM compute)`` plus attention, TP
all-reduces and fixed per-layer/per-step costs, each divided by an efficiency of the facts
table; an eager prefill forward lasts at least the host's time to dispatch its layers. With
the overlap scheduler a step lasts ``max(GPU, CPU)``, without it ``GPU + CPU``. Decode step
time is linear in the summed context length, which lets the scheduler jump over
many identical decode steps in closed form (``run_time`` / ``steps_until``).
"""

from __future__ import annotations

import bisect
import math

from twin import _moe
from twin._catalog import ModelSpec
from twin._facts import fact, gemm_efficiency
from twin._resolve import EngineConfig


class PerfModel:
    """Step-time formulas with every constant precomputed for one configuration.

    Args:
        config: The resolved engine configuration.
    """

    def __init__(self, config: EngineConfig) -> None:
        model, gpu, tp = config.model, config.gpu, config.tp
        layers = model.layers
        flops = config.gemm_flops
        eta_gemm = gemm_efficiency(config.gemm_low_precision)
        self._graph_bs = config.cuda_graph_bs
        self._graph_max = config.cuda_graph_bs[-1] if config.cuda_graph_bs else 0
        self._compile_max_bs = config.torch_compile_max_bs
        eta_mem = fact("eta_mem") / (1.0 + fact("eta_mem_tp_loss") * (tp - 1))
        self._weights = config.weight_bytes / (gpu.hbm_bytes_per_s * eta_mem)
        self._gemm_half = fact("gemm_half_tokens")
        self._g_body = 2.0 * layers * model.layer_params / tp / (flops * eta_gemm)
        self._g_lm = 2.0 * model.embedding_params / tp / (flops * eta_gemm)
        self.kv_per_token = config.kv_cell_bytes / (gpu.hbm_bytes_per_s * fact("eta_kv"))
        self._attn_floor = layers * fact("attn_layer_floor_s")
        # Attention stays in bf16 even with fp8 weights.
        self._attn_a = (
            4.0
            * layers
            * (model.heads / tp)
            * model.head_dim
            / (gpu.bf16_flops * fact("eta_attn_max"))
        )
        self._attn_half = fact("attn_half_tokens")
        self._layer = layers * fact("layer_overhead_s")
        self._compiled_layer = self._layer * fact("compile_layer_factor")
        self._eager = layers * fact("eager_layer_penalty_s")
        self._step = fact("step_overhead_s")
        self._prefill = fact("prefill_overhead_s")
        self._dispatch = prefill_dispatch_s(model, config.gemm_low_precision)
        self._graph_prefill_max = config.graph_prefill_max_tokens
        self._decode_floor = model.moe_layers * fact("decode_moe_layer_floor_s")
        if tp > 1:
            link = gpu.link_bytes_per_s * fact("eta_link")
            pcie = 0.0 if gpu.nvlink else fact("ar_latency_pcie_s")
            self._ar_calls = 2.0 * layers
            self._ar_per_token = (model.hidden * config.dtype_bytes * 2.0 * (tp - 1) / tp) / link
            self._ar_graph = fact("ar_latency_graph_s") + pcie
            self._ar_eager = fact("ar_latency_eager_s") + pcie
        else:
            self._ar_calls = self._ar_per_token = self._ar_graph = self._ar_eager = 0.0
        self._cpu_step = fact("cpu_step_s")
        self._cpu_req = fact("cpu_per_req_s") + fact("cpu_stream_s") / config.stream_interval
        self.overlap = config.overlap
        self._decode_cache: dict[int, tuple[float, float]] = {}
        self._experts = (model.experts, model.experts_per_token)
        self._sparse: _moe.SparseCoeffs | None = None
        self._g_moe = 0.0
        self._fixed = 0.0
        if model.is_moe or model.is_mla or config.layout.dp_attention:
            self._use_sparse(_moe.coefficients(config, eta_mem))
        self._speculative = config.speculative
        # A verify step reads each request's KV once for all the tokens it yields.
        yields = config.speculative.tokens_per_step if config.speculative else 1.0
        self.decode_kv_per_token = self.kv_per_token / yields

    def _use_sparse(self, c: _moe.SparseCoeffs) -> None:
        # MoE / MLA / dp-attention coefficients (twin._moe) in place of the dense ones.
        self._sparse = c
        self._g_body, self._g_lm, self._attn_a = c.g_body, c.g_lm, c.attn_a
        self._g_moe = c.g_moe
        self.kv_per_token = c.kv_per_token
        self._ar_calls, self._ar_per_token = c.ar_calls, c.ar_per_token
        self._fixed = c.fixed_s

    def _weight_time(self, tokens: int) -> float:
        # Seconds to stream the weights a forward of ``tokens`` tokens reads.
        if self._sparse is None:
            return self._weights
        return self._sparse.weights_s(tokens, *self._experts)

    def decode_coeffs(self, bs: int) -> tuple[float, float]:
        """GPU and CPU time of a decode step, without the context-dependent KV reads.

        Args:
            bs: Running requests in the step.

        Returns:
            ``(gpu_fixed, cpu)``; the GPU time is ``gpu_fixed + kv_per_token * context``.
        """
        cached = self._decode_cache.get(bs)
        if cached is not None:
            return cached
        gpu = self._forward(bs, 1)
        cpu = self._cpu_step + self._cpu_req * bs
        spec = self._speculative
        if spec is not None:
            # One draft-and-verify step, spread over the tokens it yields per request.
            body = gpu - self._step - self._fixed
            draft = body * spec.draft_layer_share + self._step
            verify = self._forward(bs, spec.draft_tokens)
            gpu = (verify + spec.num_steps * draft) / spec.tokens_per_step
            cpu /= spec.tokens_per_step
        self._decode_cache[bs] = (gpu, cpu)
        return gpu, cpu

    def _forward(self, bs: int, tokens_per_request: int) -> float:
        # GPU time of one decode forward of ``bs`` requests, without the KV reads; the CUDA
        # graph is captured per batch size, whatever the tokens per request.
        graph = 0 < bs <= self._graph_max
        padded = self._graph_bs[bisect.bisect_left(self._graph_bs, bs)] if graph else bs
        tokens = padded * tokens_per_request
        gemm = (self._g_body + self._g_lm) * (tokens + self._gemm_half) + self._g_moe * tokens
        gpu = max(self._weight_time(tokens), gemm) + self._attn_floor + self._step + self._fixed
        gpu += self._compiled_layer if bs <= self._compile_max_bs else self._layer
        ar_latency = self._ar_graph if graph else self._ar_eager
        gpu += self._ar_calls * (ar_latency + self._ar_per_token * tokens)
        # Small batches of a MoE model read little per layer; its kernels' least durations
        # then set the step.
        gpu = max(gpu, self._decode_floor + self._step)
        if not graph:
            gpu += self._eager
        return gpu

    def attention(self, new: int, prefix: int) -> float:
        """Causal prefill attention time of one request's chunk.

        Args:
            new: Tokens computed in this forward.
            prefix: Tokens already in the KV cache before them (cache hit + earlier chunks).

        Returns:
            Seconds.
        """
        # eta(n) = eta_max * n / (n + half), so FLOPs / eta simplifies to this product.
        return self._attn_a * (prefix + new / 2.0) * (new + self._attn_half)

    def prefill_time(
        self,
        tokens: int,
        attention: float,
        finishing: int,
        reqs: int,
        decode_bs: int,
        decode_context: int,
    ) -> float:
        """Time of one prefill/extend forward, optionally mixed with decode requests.

        Args:
            tokens: New prompt tokens in the batch.
            attention: Summed ``attention()`` of the batch's requests.
            finishing: Requests whose prompt completes (each samples one token).
            reqs: Requests in the batch.
            decode_bs: Decode requests mixed into the batch (``--enable-mixed-chunk``).
            decode_context: Their summed context length.

        Returns:
            Seconds.
        """
        total = tokens + decode_bs
        gemm = self._g_body * (total + self._gemm_half) + self._g_lm * (
            finishing + decode_bs + self._gemm_half
        ) + self._g_moe * total
        gpu = max(self._weight_time(total), gemm) + attention + self._layer + self._prefill
        gpu += self._fixed
        gpu += self._ar_calls * (self._ar_eager + self._ar_per_token * total)
        if decode_bs:
            gpu += self._attn_floor + self.kv_per_token * decode_context
        if total > self._graph_prefill_max:
            gpu = max(gpu, self._dispatch)
        cpu = self._cpu_step + self._cpu_req * (reqs + decode_bs)
        return max(gpu, cpu) if self.overlap else gpu + cpu


def prefill_dispatch_s(model: ModelSpec, quantized_activations: bool) -> float:
    """Host time to dispatch an eager prefill forward: the least GPU time of one.

    Args:
        model: The served model.
        quantized_activations: Whether the GEMMs run in 8 bits (or fewer), so each first
            quantizes its input in a kernel of its own.

    Returns:
        Seconds: per layer, ``prefill_dispatch_mla_layer_s`` for MLA models, else
        ``prefill_dispatch_moe_layer_s`` for MoE layers and ``prefill_dispatch_layer_s`` for
        dense ones; plus ``prefill_dispatch_quant_gemm_s`` for each quantized GEMM.
    """
    if model.is_mla:
        seconds = model.layers * fact("prefill_dispatch_mla_layer_s")
    else:
        seconds = model.dense_mlp_layers * fact("prefill_dispatch_layer_s") + (
            model.moe_layers * fact("prefill_dispatch_moe_layer_s")
        )
    if quantized_activations:
        seconds += _gemms_per_forward(model) * fact("prefill_dispatch_quant_gemm_s")
    return seconds


def _gemms_per_forward(model: ModelSpec) -> int:
    # Linear layers of a forward that quantize their input: q/kv (fused) and o in attention,
    # plus MLA's low-rank q_b and kv_b; gate/up (fused) and down in a dense MLP, the fused
    # MoE kernel's two expert GEMMs and the shared expert's two in a MoE layer.
    attention = 4 if model.is_mla else 2
    moe_mlp = 2 + (2 if model.shared_experts else 0)
    return model.layers * attention + model.dense_mlp_layers * 2 + model.moe_layers * moe_mlp


def _cpu_bound_steps(a0: float, slope: float, cpu: float) -> float:
    # Steps at the start of a run whose CPU time exceeds the growing GPU time.
    if a0 >= cpu:
        return 0.0
    if slope <= 0.0:
        return math.inf
    return math.ceil((cpu - a0) / slope)


def run_time(
    gpu: float, cpu: float, kv: float, context: int, bs: int, steps: int, overlap: bool
) -> float:
    """Total time of ``steps`` consecutive decode steps of an unchanged batch.

    Args:
        gpu: ``decode_coeffs(bs)[0]``.
        cpu: ``decode_coeffs(bs)[1]``.
        kv: ``PerfModel.kv_per_token``.
        context: Summed context length at the first step.
        bs: Batch size (the context grows by ``bs`` per step).
        steps: Number of steps.
        overlap: Whether CPU time overlaps GPU time.

    Returns:
        Seconds.
    """
    if not overlap:
        gpu, cpu = gpu + cpu, 0.0
    a0, slope = gpu + kv * context, kv * bs
    k = min(_cpu_bound_steps(a0, slope, cpu), steps)
    rest = steps - k
    return k * cpu + rest * a0 + slope * (steps * (steps - 1) - k * (k - 1)) / 2.0


def steps_until(
    gpu: float, cpu: float, kv: float, context: int, bs: int, budget: float, overlap: bool
) -> int:
    """Fewest decode steps (at least 1) whose total time reaches ``budget``.

    Args:
        gpu: ``decode_coeffs(bs)[0]``.
        cpu: ``decode_coeffs(bs)[1]``.
        kv: ``PerfModel.kv_per_token``.
        context: Summed context length at the first step.
        bs: Batch size.
        budget: Seconds to cover.
        overlap: Whether CPU time overlaps GPU time.

    Returns:
        The number of steps.
    """
    if budget <= 0.0:
        return 1
    if not overlap:
        gpu, cpu = gpu + cpu, 0.0
    a0, slope = gpu + kv * context, kv * bs
    k = _cpu_bound_steps(a0, slope, cpu)
    if k * cpu >= budget:
        return max(1, math.ceil(budget / cpu))
    left = budget - k * cpu
    first = a0 + slope * k
    if slope <= 0.0:
        n = math.ceil(left / first)
    else:
        b = first - slope / 2.0
        n = math.ceil((-b + math.sqrt(b * b + 2.0 * slope * left)) / slope)
    n = max(1, int(k + n))
    while n > 1 and run_time(gpu, cpu, kv, context, bs, n - 1, True) >= budget:
        n -= 1
    while run_time(gpu, cpu, kv, context, bs, n, True) < budget:
        n += 1
    return n
