"""Tests of twin._resolve: SGLang 0.5.5's auto defaults, memory plan and start-up failures."""

from __future__ import annotations

from typing import Any

import pytest

import twin


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
