"""Tests of the public surface of ``twin``."""

from __future__ import annotations

import pathlib

import twin


def test_public_names() -> None:
    assert sorted(twin.__all__) == sorted(
        ["BUNDLED_TOKENIZER", "CATALOG", "GPUS", "SGLANG_VERSION", "SM100_GPUS", "Profile",
         "StartupError", "auto_chunked_prefill_size", "bench_serving_random_lengths",
         "dataset_lengths", "estimate",
         "load_profile", "load_tokenizer", "modelled_flags", "resolve_server_args",
         "sample_lengths", "using_profile"]
    )
    assert twin.SGLANG_VERSION == "0.5.5" and twin.SM100_GPUS <= set(twin.GPUS)
    # SGLang's auto chunk size follows the GPU's memory: 8192 on an 80 GB H100 and
    # 16384 on a 180 GB B200 (server_args.py, _handle_gpu_memory_settings)
    assert twin.auto_chunked_prefill_size("H100") == 8192
    assert twin.auto_chunked_prefill_size("B200") == 16384
    assert isinstance(twin.BUNDLED_TOKENIZER, pathlib.Path)
    assert (twin.BUNDLED_TOKENIZER / "tokenizer.json").is_file()
    for name in (
        "Llama-3.1-8B-Instruct",
        "Llama-3.1-70B-Instruct",
        "Llama-3.2-1B-Instruct",
        "Qwen3-8B",
        "Qwen2.5-7B-Instruct",
        "Qwen2.5-14B-Instruct",
        "Qwen2.5-32B-Instruct",
        "Qwen2.5-72B-Instruct",
    ):
        assert name in twin.CATALOG
    for gpu in ("H100", "H200", "A100-80G", "A100-40G", "L40S"):
        assert gpu in twin.GPUS
    assert issubclass(twin.StartupError, RuntimeError)
