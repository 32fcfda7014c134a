"""Tests of twin._perf: roofline step times and the closed-form decode runs."""

from __future__ import annotations

import pytest

import twin
from twin import _args, _facts, _perf, _resolve


def _model(**server_args: object) -> tuple[_resolve.EngineConfig, _perf.PerfModel]:
    gpu = str(server_args.pop("gpu", "H100"))
    args = _args.parse_mapping({"model_path": "Llama-3.1-8B-Instruct", **server_args}, gpu=gpu)
    config = _resolve.resolve(args)
    return config, _perf.PerfModel(config)


def test_decode_is_weight_bound_at_batch_one() -> None:
    config, perf = _model()
    gpu, _ = perf.decode_coeffs(1)
    streaming = config.weight_bytes / config.gpu.hbm_bytes_per_s
    # Slower than the raw bandwidth floor (efficiency < 1), but within fixed costs of it.
    assert streaming < gpu < streaming * 1.6
    assert perf.decode_coeffs(8)[0] < gpu * 1.05  # a small batch costs about the same


def test_h100_is_faster_than_a100() -> None:
    assert _model()[1].decode_coeffs(1)[0] < _model(gpu="A100-80G")[1].decode_coeffs(1)[0]


def test_eager_decode_costs_more() -> None:
    graph = _model()[1].decode_coeffs(16)[0]
    eager = _model(disable_cuda_graph=True)[1].decode_coeffs(16)[0]
    assert eager > graph * 1.3
    # Beyond --cuda-graph-max-bs the batch runs eagerly too.
    perf = _model(cuda_graph_max_bs=8)[1]
    assert perf.decode_coeffs(9)[0] - perf.decode_coeffs(8)[0] > 1e-3


def test_prefill_grows_with_tokens_and_prefix() -> None:
    _, perf = _model()
    short = perf.prefill_time(1024, perf.attention(1024, 0), 1, 1, 0, 0)
    long = perf.prefill_time(8192, perf.attention(8192, 0), 1, 1, 0, 0)
    assert 4 < long / short < 9
    assert perf.attention(1024, 4096) > 4 * perf.attention(1024, 0)


def test_an_eager_prefill_lasts_at_least_its_layers_dispatch() -> None:
    # A short prompt's GPU work takes less time than the host needs to launch an eager
    # forward's kernels: one-user TTFTs of deep models stay near 90-130 ms up to 1k tokens.
    dense_layer = _facts.fact("prefill_dispatch_layer_s")
    moe_layer = _facts.fact("prefill_dispatch_moe_layer_s")
    config, perf = _model()
    assert perf.prefill_time(64, perf.attention(64, 0), 1, 1, 0, 0) >= 32 * dense_layer
    config, perf = _model(model_path="Qwen3-235B-A22B", tp_size=8, gpu="B200")
    assert config.model.moe_layers == 94
    assert perf.prefill_time(600, perf.attention(600, 0), 1, 1, 0, 0) >= 94 * moe_layer
    # A long prefill is bound by its GPU work, not by the dispatch.
    long = perf.prefill_time(16384, perf.attention(16384, 0), 1, 1, 0, 0)
    assert long > 3 * 94 * moe_layer
    # An MLA model's layers launch about twice a GQA MoE layer's kernels.
    config, perf = _model(model_path="DeepSeek-R1", tp_size=8, gpu="B200")
    mla_layer = _facts.fact("prefill_dispatch_mla_layer_s")
    assert mla_layer > moe_layer
    assert perf.prefill_time(600, perf.attention(600, 0), 1, 1, 0, 0) >= 61 * mla_layer


def test_quantized_gemms_add_their_input_quantisation_to_the_dispatch() -> None:
    # SGLang quantizes an 8-bit GEMM's input in a kernel of its own (fp8_utils.py), so an
    # eager prefill of an fp8 model launches four more ops a layer: a short prompt's TTFT
    # grows though its GEMMs run faster (Qwen3-8B on one H100 at 4 users: TTFT p50 33.4 ms
    # in fp8 against 27.3 ms in bf16).
    per_gemm = _facts.fact("prefill_dispatch_quant_gemm_s")

    def prefill(tokens: int, **server_args: object) -> float:
        _, perf = _model(**server_args)
        return perf.prefill_time(tokens, perf.attention(tokens, 0), 1, 1, 0, 0)

    assert prefill(64, quantization="fp8") >= prefill(64) + 32 * 4 * per_gemm
    # A long prompt is bound by its GEMMs, which fp8 runs twice as fast.
    assert prefill(16384, quantization="fp8") < prefill(16384)
    # Without 8-bit tensor cores (A100) the weights are widened inside the GEMM: no kernels
    # of their own.
    assert prefill(64, quantization="fp8", gpu="A100-80G") == prefill(64, gpu="A100-80G")
    # DeepSeek-R1 ships fp8: its MLA layers' floor comes with 482 quantized GEMMs.
    config, perf = _model(model_path="DeepSeek-R1", tp_size=8, gpu="B200")
    floor = 61 * _facts.fact("prefill_dispatch_mla_layer_s") + 482 * per_gemm
    assert perf.prefill_time(600, perf.attention(600, 0), 1, 1, 0, 0) >= floor


def test_moe_decode_at_small_batches_lasts_at_least_its_kernel_floors() -> None:
    # Qwen3-235B-A22B on 8xB200 reads ~30 MB a GPU per decode step at a batch of one, 4 ms
    # at the twin's streaming rate, yet SGLang's cookbook measures 10.1 ms: 94 MoE layers of
    # kernels at their least durations.
    floor = _facts.fact("decode_moe_layer_floor_s")
    _, perf = _model(model_path="Qwen3-235B-A22B", tp_size=8, gpu="B200")
    assert perf.decode_coeffs(1)[0] >= 94 * floor
    # A large batch touches nearly every expert: streaming, not the floor, sets the step.
    assert perf.decode_coeffs(256)[0] > 1.5 * 94 * floor


def test_piecewise_cuda_graphs_lift_the_dispatch_floor_up_to_their_max_tokens() -> None:
    def prefill(tokens: int, **server_args: object) -> float:
        _, perf = _model(**server_args)
        return perf.prefill_time(tokens, perf.attention(tokens, 0), 1, 1, 0, 0)

    eager = prefill(64)
    assert prefill(64, enable_piecewise_cuda_graph=True) < eager / 2
    # Larger than the largest captured size (32 for a limit of 35): eager again.
    assert prefill(64, enable_piecewise_cuda_graph=True, piecewise_cuda_graph_max_tokens=35) == (
        eager
    )
    # SGLang 0.5.5 drops the graphs with torch.compile or CUDA graphs off.
    assert prefill(64, enable_piecewise_cuda_graph=True, enable_torch_compile=True) == eager


def test_piecewise_cuda_graphs_resolve_as_sglang_does() -> None:
    config, _ = _model(enable_piecewise_cuda_graph=True, piecewise_cuda_graph_max_tokens=5000)
    assert config.graph_prefill_max_tokens == 4864  # 4352 + k * 256 <= 5000
    assert _model()[0].graph_prefill_max_tokens == 0
    assert _model(enable_piecewise_cuda_graph=True, disable_cuda_graph=True)[
        0
    ].graph_prefill_max_tokens == 0
    # MLA layers are not standard GQA attention: the runner is not built.
    config, _ = _model(
        enable_piecewise_cuda_graph=True, model_path="DeepSeek-V3", tp_size=8, gpu="H200"
    )
    assert config.graph_prefill_max_tokens == 0
    with pytest.raises(_resolve.StartupError, match="max\\(\\) arg is an empty sequence"):
        _model(enable_piecewise_cuda_graph=True, piecewise_cuda_graph_max_tokens=3)
    # A huge limit resolves without building SGLang's list of billions of sizes.
    config, _ = _model(enable_piecewise_cuda_graph=True, piecewise_cuda_graph_max_tokens=10**12)
    assert config.graph_prefill_max_tokens == 10**12 - (10**12 - 4352) % 256


def test_fp8_gemms_reach_a_smaller_share_of_their_peak() -> None:
    # End to end, an fp8 prefill's linear layers (GEMMs with their input quantisation) run at
    # about 0.50 of the fp8 peak where bf16 ones run at 0.78 of theirs, so fp8 shortens a
    # compute-bound prefill far less than the twice-as-high peak suggests.
    tokens = 8192

    def linear_time(**server_args: object) -> float:
        _, perf = _model(**server_args)
        return perf.prefill_time(tokens, 0.0, 1, 1, 0, 0)

    ratio = linear_time(quantization="fp8") / linear_time()
    assert 0.72 < ratio < 0.85  # 0.78 / (2 x 0.50) = 0.78; at equal efficiency it was 0.5


def test_an_fp8_prefill_gains_what_sglang_and_vllm_measure_end_to_end() -> None:
    # FP8 / bf16 TTFT of one 8,192-token prompt on one H100 (Qwen3-8B): 0.81 measured with
    # vLLM (silybench), 0.79 for SGLang's Qwen3-14B burst on one host; attention stays bf16.
    def ttft(**server_args: object) -> float:
        result = twin.estimate({"model_path": "Qwen3-8B", **server_args}, gpu="H100",
                               scenario="D(8192,8)", concurrency=1, max_requests=2)
        return float(result["aggregated_metrics"]["stats"]["ttft"]["mean"])

    assert 0.76 < ttft(quantization="fp8") / ttft() < 0.88


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize(
    ("gpu", "cpu", "context", "bs"),
    [(5e-3, 1e-3, 1000, 8), (1e-3, 4e-3, 10, 64), (2e-3, 2.5e-3, 0, 16)],
)
def test_run_time_matches_step_by_step(
    gpu: float, cpu: float, context: int, bs: int, overlap: bool
) -> None:
    kv = 1e-7
    steps, total = 300, 0.0
    for k in range(steps):
        step_gpu = gpu + kv * (context + k * bs)
        total += max(step_gpu, cpu) if overlap else step_gpu + cpu
    assert _perf.run_time(gpu, cpu, kv, context, bs, steps, overlap) == pytest.approx(total)
    for budget in (1e-4, total / 3, total / 2, total):
        n = _perf.steps_until(gpu, cpu, kv, context, bs, budget, overlap)
        assert _perf.run_time(gpu, cpu, kv, context, bs, n, overlap) >= budget - 1e-12
        if n > 1:
            assert _perf.run_time(gpu, cpu, kv, context, bs, n - 1, overlap) < budget
