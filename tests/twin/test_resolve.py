"""Tests of twin._resolve: SGLang 0.5.5's auto defaults, memory plan and start-up failures."""

from __future__ import annotations

from typing import Any

import pytest

import twin
from twin import _args
from twin import _resolve as _resolve_module
from twin._gpus import GPU_TABLE


def _resolve(gpu: str = "H100", num_gpus: int = 8, **server_args: Any) -> dict[str, Any]:
    return twin.resolve_server_args(
        {"model_path": "Llama-3.1-8B-Instruct", **server_args}, gpu=gpu, num_gpus=num_gpus
    )


@pytest.mark.parametrize(
    ("gpu", "tp", "frac"),
    [
        ("H100", 1, 0.835),
        ("H100", 4, 0.824),
        ("H100", 8, 0.818),
        ("H200", 1, 0.907),
        ("A100-80G", 1, 0.836),
    ],
)
def test_auto_mem_fraction_static(gpu: str, tp: int, frac: float) -> None:
    # The research note's derived values of the 0.5.5 formula.
    assert _resolve(gpu, tp_size=tp)["mem_fraction_static"] == pytest.approx(frac, abs=0.001)


def test_auto_sizes_by_gpu_memory() -> None:
    h100 = _resolve("H100")
    assert (h100["chunked_prefill_size"], h100["cuda_graph_max_bs"]) == (8192, 256)
    assert _resolve("H100", tp_size=4)["cuda_graph_max_bs"] == 512
    l40s = _resolve("L40S")
    assert (l40s["chunked_prefill_size"], l40s["cuda_graph_max_bs"]) == (4096, 32)
    assert _resolve("A100-40G")["chunked_prefill_size"] == 4096
    assert _resolve("B200")["chunked_prefill_size"] == 16384


def test_auto_mem_fraction_static_without_chunking_reserves_the_prefill_budget() -> None:
    # SGLang 0.5.5 reserves max(max_prefill_tokens, 2048) * 1.5 MiB with --chunked-prefill-size
    # -1: 512 + 24576 + 2 * 256 + 128 = 25728 MiB of 81559 on an H100 (issue 17 row 5).
    qwen = {"model_path": "Qwen3-8B", "chunked_prefill_size": -1}
    assert twin.resolve_server_args(qwen)["mem_fraction_static"] == 0.685
    # A small prefill budget falls back to the 10 GiB floor of GPUs above 60 GiB.
    small = twin.resolve_server_args({**qwen, "max_prefill_tokens": 4096})
    assert small["mem_fraction_static"] == 0.874


def test_auto_cuda_graph_max_bs_on_the_largest_gpus_ignores_tp() -> None:
    # >= 160 GiB (B200): 512 at any tp; below, 256 under tp 4 (issue 17 row 6).
    assert _resolve("B200")["cuda_graph_max_bs"] == 512
    assert _resolve("B200", tp_size=4)["cuda_graph_max_bs"] == 512
    assert _resolve("H200")["cuda_graph_max_bs"] == 256


def _capture(**server_args: Any) -> tuple[int, ...]:
    args = _args.parse_mapping({"model_path": "Llama-3.1-8B-Instruct", **server_args})
    return _resolve_module.resolve(args).cuda_graph_bs


def test_capture_sizes_add_only_the_request_pool_size() -> None:
    # An off-grid --cuda-graph-max-bs is not captured itself (issue 17 row 7) ...
    assert _capture(cuda_graph_max_bs=100)[-2:] == (88, 96)
    assert _capture(cuda_graph_max_bs=600)[-3:] == (512, 544, 576)
    # ... but a request pool smaller than the grid's largest size is.
    assert _capture(max_running_requests=100)[-3:] == (88, 96, 100)
    assert _capture(max_running_requests=3) == (1, 2, 3)
    assert _capture()[-1] == 256 and _capture(disable_cuda_graph=True) == ()


def test_kv_pool_matches_the_note() -> None:
    info = _resolve()
    assert info["max_total_num_tokens"] == pytest.approx(414_000, rel=0.01)
    assert info["max_running_requests"] == 2048
    assert info["max_req_input_len"] == 131072 - 1 - 5
    assert info["version"] == "0.5.5" and info["gpu"] == "H100"
    assert info["served_model_name"] == "Llama-3.1-8B-Instruct"


def test_fp8_kv_doubles_tokens_and_max_total_tokens_caps() -> None:
    base = _resolve()["max_total_num_tokens"]
    assert _resolve(kv_cache_dtype="fp8_e4m3")["max_total_num_tokens"] == pytest.approx(
        2 * base, abs=2
    )
    assert _resolve(max_total_tokens=1000)["max_total_num_tokens"] == 1000


def test_kv_bytes_follow_the_flag_like_sglangs_element_size() -> None:
    base = _resolve()["max_total_num_tokens"]
    assert _resolve(kv_cache_dtype="bf16")["max_total_num_tokens"] == base
    # float4_e2m1fn_x2 reports one byte per element and SGLang's GQA cell size keeps it
    fp8 = _resolve(kv_cache_dtype="fp8_e5m2")["max_total_num_tokens"]
    assert _resolve(kv_cache_dtype="fp4_e2m1")["max_total_num_tokens"] == fp8


def _engine(**server_args: Any) -> Any:
    args = _args.parse_mapping({"model_path": "Llama-3.1-70B-Instruct", "gpu": "H100",
                                **server_args})
    return _resolve_module.resolve(args)


def test_quantization_sets_weight_bytes_and_the_gemm_peak() -> None:
    bf16, fp8, awq = _engine(tp_size=4), _engine(tp_size=4, quantization="fp8"), _engine(
        tp_size=4, quantization="awq")
    # 70B: about 141 GB in bf16, 71 GB in fp8 and 38 GB in 4-bit AWQ (embeddings stay bf16)
    assert bf16.weight_bytes * 4 / 1e9 == pytest.approx(141, rel=0.02)
    assert fp8.weight_bytes * 4 / 1e9 == pytest.approx(72, rel=0.03)
    assert awq.weight_bytes * 4 / 1e9 == pytest.approx(38, rel=0.05)
    assert awq.max_total_tokens > fp8.max_total_tokens > bf16.max_total_tokens
    # AWQ dequantizes to bf16: its GEMMs run at the bf16 peak, fp8's at the fp8 peak
    assert awq.gemm_flops == bf16.gemm_flops == GPU_TABLE["H100"].bf16_flops
    assert fp8.gemm_flops == GPU_TABLE["H100"].fp8_flops
    # a 4-bit 70B loads on one H100, the bf16 one does not
    assert _engine(tp_size=1, quantization="awq").max_total_tokens > 0
    with pytest.raises(twin.StartupError):
        _engine(tp_size=1)


def test_tp_shrinks_weights_per_gpu() -> None:
    one = twin.resolve_server_args({"model_path": "Llama-3.1-70B-Instruct", "tp_size": 4})
    two = twin.resolve_server_args({"model_path": "Llama-3.1-70B-Instruct", "tp_size": 8})
    assert two["max_total_num_tokens"] > 2 * one["max_total_num_tokens"]


@pytest.mark.parametrize(
    ("server_args", "kind", "text"),
    [
        (
            {"mem_fraction_static": 0.15},
            "oom",
            "Not enough memory. Please try to increase --mem-fraction-static.",
        ),
        ({"mem_fraction_static": 0.99}, "oom", "CUDA out of memory"),
        ({"model_path": "Llama-3.1-70B-Instruct"}, "oom", "CUDA out of memory"),
        ({"tp_size": 3}, "startup", "not divisible by tp_size (3)"),
        ({"model_path": "Qwen2.5-7B-Instruct", "tp_size": 8}, "startup", "tp_size (8)"),
        ({"tp_size": 4, "dp_size": 4}, "startup", "invalid device ordinal"),
        ({"context_length": 200_000}, "startup", "greater than the derived context_length"),
    ],
)
def test_startup_failures(server_args: dict[str, Any], kind: str, text: str) -> None:
    with pytest.raises(twin.StartupError) as exc:
        _resolve(**server_args)
    assert exc.value.kind == kind
    assert text in str(exc.value)


def test_model_lookup() -> None:
    assert _resolve(model_path="meta-llama/Llama-3.1-8B-Instruct")["max_total_num_tokens"]
    with pytest.raises(ValueError, match="--model-path"):
        _resolve(model_path="nobody/Unknown-13B")


def test_local_config_dir(tmp_path: pytest.TempPathFactory) -> None:
    import json
    import pathlib

    directory = pathlib.Path(str(tmp_path)) / "tiny"
    directory.mkdir()
    (directory / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "num_hidden_layers": 4,
                "hidden_size": 512,
                "num_attention_heads": 8,
                "num_key_value_heads": 2,
                "intermediate_size": 1024,
                "vocab_size": 1000,
                "max_position_embeddings": 2048,
                "torch_dtype": "bfloat16",
            }
        )
    )
    info = _resolve(model_path=str(directory))
    assert info["context_length"] == 2048
    # 2 kv heads x 64 dims x 4 layers x K,V x 2 bytes = 2 KiB per token
    assert info["max_total_num_tokens"] > 30_000_000
