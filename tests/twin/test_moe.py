"""Mixture-of-experts, MLA, expert parallelism and dp-attention in the twin."""

from __future__ import annotations

import ast
import json
import pathlib
from typing import Any

import httpx
import pytest

import twin
from tests.twin import support
from twin import _args, _catalog, _moe, _perf, _resolve
from twin._errors import StartupError
from twin._gpus import GPU_TABLE

R1_DP = ["--model-path", "DeepSeek-R1", "--gpu", "H200", "--tp-size", "8",
         "--enable-dp-attention", "--dp-size", "8"]


def _config(gpu: str = "H200", **flags: Any) -> _resolve.EngineConfig:
    return _resolve.resolve(_args.parse_mapping(flags, gpu=gpu, num_gpus=8))


@pytest.mark.parametrize(
    ("name", "total_b", "active_b"),
    # Published sizes: DeepSeek-V3 technical report (671B total, 37B activated, without the
    # 14B MTP module); the Qwen3 model cards (30.5B / 3.3B, 235B / 22B).
    [("DeepSeek-V3", 671, 37), ("DeepSeek-R1", 671, 37), ("Qwen3-30B-A3B", 30.5, 3.3),
     ("Qwen3-235B-A22B", 235, 22)],
)
def test_catalogue_matches_published_sizes(name: str, total_b: float, active_b: float) -> None:
    model = _catalog.load_model(name)
    assert model.total_params / 1e9 == pytest.approx(total_b, rel=0.01)
    active = model.active_decoder_params + 2 * model.embedding_params
    assert active / 1e9 == pytest.approx(active_b, rel=0.06)


def _write(tmp_path: pathlib.Path, name: str, config: dict[str, Any]) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_config_json_of_deepseek_and_qwen3_moe(tmp_path: pathlib.Path) -> None:
    deepseek = {
        "architectures": ["DeepseekV3ForCausalLM"], "num_hidden_layers": 61,
        "hidden_size": 7168, "num_attention_heads": 128, "num_key_value_heads": 128,
        "intermediate_size": 18432, "vocab_size": 129280, "max_position_embeddings": 163840,
        "n_routed_experts": 256, "num_experts_per_tok": 8, "n_shared_experts": 1,
        "moe_intermediate_size": 2048, "first_k_dense_replace": 3, "kv_lora_rank": 512,
        "q_lora_rank": 1536, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
        "v_head_dim": 128, "torch_dtype": "bfloat16",
        "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]},
    }
    local = _catalog.load_model(_write(tmp_path, "ds", deepseek))
    known = _catalog.load_model("DeepSeek-V3")
    assert (local.is_moe, local.is_mla, local.quantization) == (True, True, "fp8")
    assert local.total_params == known.total_params
    assert local.active_decoder_params == known.active_decoder_params
    qwen = {
        "architectures": ["Qwen3MoeForCausalLM"], "num_hidden_layers": 48, "hidden_size": 2048,
        "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
        "intermediate_size": 6144, "vocab_size": 151936, "max_position_embeddings": 40960,
        "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768,
    }
    local = _catalog.load_model(_write(tmp_path, "qw", qwen))
    assert local.total_params == _catalog.load_model("Qwen3-30B-A3B").total_params
    assert (local.dense_layers, local.shared_experts, local.is_mla) == (0, 0, False)
    with pytest.raises(ValueError, match="lacks a field"):
        _catalog.load_model(_write(tmp_path, "bad", {**qwen, "moe_intermediate_size": None}))


def test_mla_kv_cell_is_the_compressed_latent() -> None:
    config = _config(model_path="DeepSeek-V3", tp_size=8)
    # (kv_lora_rank + qk_rope_head_dim) x layers x bf16, not multiplied by heads or by 2.
    assert config.kv_cell_bytes == (512 + 64) * 61 * 2
    fp8 = _config(model_path="DeepSeek-V3", tp_size=8, kv_cache_dtype="fp8_e4m3")
    assert fp8.kv_cell_bytes == (512 + 64) * 61


def test_deepseek_v3_fp8_needs_h200_for_tp8() -> None:
    # SGLang's DeepSeek docs: one node of 8 x H200 serves it; 8 x H100 (80 GB) does not, it
    # takes two H100 nodes. Weights: ~671 GB fp8 -> ~84 GB per GPU.
    with pytest.raises(StartupError) as failure:
        _config(gpu="H100", model_path="DeepSeek-V3", tp_size=8)
    assert failure.value.kind == "oom"
    config = _config(gpu="H200", model_path="DeepSeek-V3", tp_size=8)
    assert config.weight_bytes / 1e9 == pytest.approx(671 / 8, rel=0.02)
    assert config.max_total_tokens > 100_000
    # Qwen3-235B-A22B in bf16 (~470 GB) fits on 8 x H100.
    assert _config(gpu="H100", model_path="Qwen3-235B-A22B", tp_size=8).max_total_tokens > 0


def test_expert_parallelism_keeps_weight_memory_and_dp_attention_replicates_attention() -> None:
    tp = _config(model_path="DeepSeek-R1", tp_size=8)
    ep = _config(model_path="DeepSeek-R1", tp_size=8, ep_size=8)
    assert ep.weight_bytes == pytest.approx(tp.weight_bytes)
    dp = _config(model_path="DeepSeek-R1", tp_size=8, enable_dp_attention=True, dp_size=8)
    attention = 61 * dp.model.attn_params * dp.decoder_weight_bytes
    assert dp.weight_bytes - tp.weight_bytes == pytest.approx(attention * 7 / 8)
    # Each DP rank keeps its own KV pool on its own GPU and schedules its own batch.
    assert dp.dp == 8 and dp.layout.attn_tp == 1 and dp.layout.gpus == 8
    assert dp.kv_cell_bytes == tp.kv_cell_bytes
    assert dp.chunked_prefill_size == (tp.chunked_prefill_size or 0) // 8


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"tp_size": 8, "enable_dp_attention": True, "dp_size": 3},
         "self.tp_size % self.dp_size == 0"),
        ({"tp_size": 8, "enable_dp_lm_head": True}, "enable dp attention"),
        ({"tp_size": 8, "moe_dense_tp_size": 2}, "moe_dense_tp_size only support 1"),
    ],
)
def test_server_args_refusals(flags: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        _args.parse_mapping({"model_path": "DeepSeek-R1", **flags}, gpu="H200")


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"tp_size": 8, "ep_size": 3}, "must divide --tp-size 8"),
        ({"tp_size": 4, "ep_size": 8}, "must divide --tp-size 4"),
        ({"tp_size": 8, "dp_size": 8}, "invalid device ordinal"),  # 64 GPUs without dp-attn
    ],
)
def test_start_up_refusals(flags: dict[str, Any], needle: str) -> None:
    with pytest.raises(StartupError, match=needle):
        _config(model_path="DeepSeek-R1", **flags)


def test_deepep_sets_ep_to_tp_and_normal_mode_turns_cuda_graphs_off() -> None:
    low = _config(model_path="DeepSeek-R1", tp_size=8, moe_a2a_backend="deepep",
                  deepep_mode="low_latency")
    assert low.layout.ep == 8 and low.layout.a2a and low.cuda_graph_bs
    normal = _config(model_path="DeepSeek-R1", tp_size=8, moe_a2a_backend="deepep",
                     deepep_mode="normal")
    assert normal.cuda_graph_bs == () and normal.server_info["disable_cuda_graph"] is True


def test_wheel_says_what_the_dp_attention_and_deepep_rules_say(sglang_wheel: Any) -> None:
    module = sglang_wheel.module("sglang/srt/server_args.py")
    cls = next(n for n in module.body if isinstance(n, ast.ClassDef) and n.name == "ServerArgs")
    bodies = {n.name: ast.unparse(n) for n in cls.body if isinstance(n, ast.FunctionDef)}
    dp = bodies["_handle_data_parallelism"]
    assert "assert self.tp_size % self.dp_size == 0" in dp
    assert "self.chunked_prefill_size = self.chunked_prefill_size // self.dp_size" in dp
    factor = _resolve.fact("dp_attn_conservativeness")
    assert f"self.schedule_conservativeness = self.schedule_conservativeness * {factor:g}" in dp
    a2a = bodies["_handle_a2a_moe"]
    assert "self.ep_size = self.tp_size" in a2a
    assert "self.disable_cuda_graph = True" in a2a
    layer = ast.unparse(sglang_wheel.module("sglang/srt/layers/moe/fused_moe_triton/layer.py"))
    assert "assert num_experts % self.moe_ep_size == 0" in layer


def test_touched_experts() -> None:
    assert _moe.touched_experts(256, 8, 1) == pytest.approx(8)
    assert _moe.touched_experts(256, 8, 2) == pytest.approx(256 * (1 - (1 - 8 / 256) ** 2))
    assert _moe.touched_experts(256, 8, 4096) == pytest.approx(256)
    assert _moe.touched_experts(0, 0, 10) == 0.0


def test_moe_decode_step_grows_sub_linearly_where_experts_saturate() -> None:
    perf = _perf.PerfModel(_config(model_path="DeepSeek-R1", tp_size=8))
    step = {bs: perf.decode_coeffs(bs)[0] for bs in (1, 8, 64, 256)}
    assert step[1] < step[8] < step[64] < step[256]
    # 8 tokens touch ~57 of 256 experts, 64 tokens ~222: weight streaming grows with them,
    # then flattens; per-token cost falls steeply.
    assert step[64] / step[8] < 64 / 8 / 2
    assert step[256] / step[64] < 1.5
    # A dense model of similar active size has no such growth from 1 to 8.
    dense = _perf.PerfModel(_config(gpu="H100", model_path="Llama-3.1-70B-Instruct", tp_size=8))
    assert dense.decode_coeffs(8)[0] / dense.decode_coeffs(1)[0] < step[8] / step[1]


def test_moe_prefill_follows_hbm_bandwidth_not_peak_flops() -> None:
    # gpustack measured Qwen3-235B-A22B's burst TTFT 1.80x longer on 8 A100s than on 8
    # H100s: near their HBM ratio (1.64), far from their bf16 peak ratio (3.17).
    def prefill(gpu: str) -> float:
        perf = _perf.PerfModel(_config(gpu=gpu, model_path="Qwen3-235B-A22B", tp_size=8))
        return perf.prefill_time(8192, perf.attention(8192, 0), 1, 1, 0, 0)

    ratio = prefill("A100-80G") / prefill("H100")
    assert 1.5 < ratio < 2.2, ratio
    hbm = GPU_TABLE["H100"].hbm_bytes_per_s / GPU_TABLE["A100-80G"].hbm_bytes_per_s
    assert ratio == pytest.approx(hbm, rel=0.25)



def test_sm100_runs_deepseek_experts_on_trtllm_kernels_faster() -> None:
    # SGLang picks flashinfer_trtllm for DeepSeek's fp8 experts on B200 alone, and not when
    # DeepEP moves the tokens; its routed experts then prefill at moe_trtllm_rate_factor x.
    def runner(gpu: str, **flags: Any) -> str:
        return _config(gpu=gpu, **{"model_path": "DeepSeek-R1", "tp_size": 8, **flags}).moe_runner

    assert runner("B200") == "flashinfer_trtllm"
    assert runner("H200") == "triton"
    assert runner("B200", moe_runner_backend="triton") == "triton"
    assert runner("B200", moe_a2a_backend="deepep") == "triton"
    assert _config(gpu="B200", model_path="Qwen3-235B-A22B", tp_size=8).moe_runner == "triton"
    info = twin.resolve_server_args({"model_path": "DeepSeek-R1", "tp_size": 8}, gpu="B200")
    assert info["moe_runner_backend"] == "flashinfer_trtllm"
    on_h200 = twin.resolve_server_args({"model_path": "DeepSeek-R1", "tp_size": 8}, gpu="H200")
    assert on_h200["moe_runner_backend"] == "auto"

    def prefill(**flags: Any) -> float:
        config = _config(gpu="B200", **{"model_path": "DeepSeek-R1", "tp_size": 8, **flags})
        perf = _perf.PerfModel(config)
        return perf.prefill_time(8000, perf.attention(8000, 0), 1, 1, 0, 0)

    assert prefill() < 0.7 * prefill(moe_runner_backend="triton")
    # SGLang sets fp8 for DeepSeek's checkpoint only on SM100; elsewhere, and for bf16
    # weights, its start-up assertion refuses the runner.
    assert runner("B200", moe_runner_backend="flashinfer_trtllm") == "flashinfer_trtllm"
    for gpu, model in (("H200", "DeepSeek-R1"), ("B200", "Qwen3-235B-A22B")):
        with pytest.raises(ValueError, match="fp8 quantization is required for Flashinfer"):
            _config(gpu=gpu, model_path=model, tp_size=8, moe_runner_backend="flashinfer_trtllm")
    assert runner("H200", moe_runner_backend="flashinfer_trtllm",
                  quantization="fp8") == "flashinfer_trtllm"


def test_mla_decode_attention_is_bounded_by_flops_with_dp_attention() -> None:
    dp = _perf.PerfModel(
        _config(model_path="DeepSeek-R1", tp_size=8, enable_dp_attention=True, dp_size=8)
    )
    tp = _perf.PerfModel(_config(model_path="DeepSeek-R1", tp_size=8))
    # One rank runs all 128 heads over the latent: more FLOPs per cached token than TP 8's
    # 16 heads, on the same bytes.
    assert dp.kv_per_token > tp.kv_per_token


def test_estimator_handles_dp_attention_and_deepep() -> None:
    flags = {"model_path": "DeepSeek-R1", "tp_size": 8, "enable_dp_attention": True,
             "dp_size": 8, "moe_a2a_backend": "deepep", "deepep_mode": "low_latency"}
    result = twin.estimate(flags, gpu="H200", scenario="D(1000,100)", concurrency=64,
                           max_requests=128)
    metrics = result["aggregated_metrics"]
    assert metrics["num_completed_requests"] >= 64 and metrics["num_error_requests"] == 0
    assert result["not_modelled"] == []
    with pytest.raises(StartupError):
        twin.estimate({"model_path": "DeepSeek-R1", "tp_size": 8}, gpu="H100",
                      scenario="D(100,10)", concurrency=1)


def test_launch_server_deepseek_r1_dp_attention_serves() -> None:
    with support.running_twin(*R1_DP, "--time-scale", "20") as url:
        info = httpx.get(f"{url}/get_server_info").json()
        text = httpx.post(
            f"{url}/v1/completions",
            json={"prompt": "once upon a time", "max_tokens": 4, "ignore_eos": True},
            timeout=30,
        ).json()
    assert info["enable_dp_attention"] is True and info["dp_size"] == 8
    assert info["not_modelled"] == []
    assert text["usage"]["completion_tokens"] == 4


def test_launch_server_refuses_what_sglang_refuses() -> None:
    procs = [
        support.launch([*R1_DP[:6], "--ep-size", "3", "--port", str(support.free_port()),
                        "--startup-time-scale", "1000"]),
        support.launch([*R1_DP[:-1], "3", "--port", str(support.free_port())]),
    ]
    assert procs[0].wait(timeout=30) == 1
    assert "must divide --tp-size 8" in support.stop(procs[0])
    assert procs[1].wait(timeout=30) == 2
    assert "self.tp_size % self.dp_size == 0" in support.stop(procs[1])
