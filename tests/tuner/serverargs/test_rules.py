"""SGLang's start-up refusals as built-in constraints, and their source in SGLang's wheel."""

from __future__ import annotations

import ast
from typing import Any

import pytest

import twin
from tuner import serverargs
from tuner._sglang_wheel import SglangWheel
from tuner.exceptions import NotSupportedError
from tuner.search import prescreen
from tuner.spec import spec_from_dict


@pytest.mark.parametrize(
    ("config", "gpu", "fragment"),
    [
        ({"cuda_graph_max_bs": 0}, None, "disable_cuda_graph"),
        ({"page_size": 64, "chunked_prefill_size": 1000}, None, "multiple of page_size 64"),
        ({"page_size": 3}, "H100", "auto size"),  # auto chunk 8192 on an H100
        ({"page_size": 4096}, None, "auto size"),  # some GPU's auto chunk (2048) breaks it
        ({"attention_backend": "trtllm_mha"}, "H100", "Blackwell"),
        ({"decode_attention_backend": "trtllm_mha"}, "A100-80G", "Blackwell"),
    ],
)
def test_refused_configs(config: dict[str, object], gpu: str | None, fragment: str) -> None:
    problem = serverargs.startup_problem(config, gpu)
    assert problem is not None and fragment in problem, problem


@pytest.mark.parametrize(
    ("config", "gpu"),
    [
        ({"cuda_graph_max_bs": 0, "disable_cuda_graph": True}, None),
        ({"page_size": 64, "chunked_prefill_size": 4096}, None),
        ({"page_size": 64, "chunked_prefill_size": -1}, None),  # chunking off: no assert
        ({"page_size": 1000, "chunked_prefill_size": 1000, "disaggregation_mode": "decode"},
         None),
        ({"page_size": 2048}, None),
        ({"attention_backend": "trtllm_mha"}, "B200"),
        ({"attention_backend": "trtllm_mha"}, None),  # local/ome: the GPU is not named
    ],
)
def test_accepted_configs(config: dict[str, object], gpu: str | None) -> None:
    assert serverargs.startup_problem(config, gpu) is None


def test_auto_chunk_sizes_come_from_the_twin() -> None:
    assert serverargs.auto_chunk_sizes("H100") == {
        twin.resolve_server_args({"model_path": "Llama-3.1-8B-Instruct"}, gpu="H100")[
            "chunked_prefill_size"
        ]
    }
    assert len(serverargs.auto_chunk_sizes(None)) > 1
    assert serverargs.SM100_GPUS <= set(twin.GPUS)


# --- each rule as SGLang's source states it (a new SGLang that changes one fails here) ----------


def _functions(wheel: SglangWheel, member: str) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in ast.walk(wheel.module(member)) if isinstance(n, ast.FunctionDef)}


def test_sglang_asserts_chunk_divisible_by_page(sglang_wheel: SglangWheel) -> None:
    check = _functions(sglang_wheel, "sglang/srt/server_args.py")["check_server_args"]
    asserts = [ast.unparse(n.test) for n in ast.walk(check) if isinstance(n, ast.Assert)]
    assert "self.chunked_prefill_size % self.page_size == 0" in asserts
    guards = [ast.unparse(n.test) for n in ast.walk(check) if isinstance(n, ast.If)]
    assert "self.chunked_prefill_size > 0 and self.disaggregation_mode != 'decode'" in guards


def test_sglang_refuses_trtllm_mha_off_sm100(sglang_wheel: SglangWheel) -> None:
    module = sglang_wheel.module("sglang/srt/server_args.py")
    found = [
        n for n in ast.walk(module)
        if isinstance(n, ast.If) and "'trtllm_mha'" in ast.unparse(n.test)
        and any("not is_sm100_supported()" in ast.unparse(i.test) and
                isinstance(i.body[0], ast.Raise) for i in n.body if isinstance(i, ast.If))
    ]
    assert found
    names = {ast.unparse(c.left) for n in found for c in ast.walk(n.test)
             if isinstance(c, ast.Compare)}
    assert names == {f"self.{name}" for name in serverargs._rules._ATTENTION_FLAGS}


def test_sglang_needs_a_cuda_graph_batch_size(sglang_wheel: SglangWheel) -> None:
    sizes = _functions(sglang_wheel, "sglang/srt/server_args.py")[
        "_generate_cuda_graph_batch_sizes"]
    filters = [ast.unparse(n) for n in ast.walk(sizes) if isinstance(n, ast.ListComp)]
    assert "[bs for bs in capture_bs if bs <= self.cuda_graph_max_bs]" in filters
    capture = _functions(sglang_wheel, "sglang/srt/model_executor/cuda_graph_runner.py")[
        "get_batch_sizes_to_capture"]
    first_if = next(n for n in capture.body if isinstance(n, ast.If))
    # max() of the list before anything could make it non-empty: max([]) raises.
    assert ast.unparse(first_if.test).startswith("max(capture_bs) >")


def _prescreen_spec(**changes: Any) -> Any:
    data: dict[str, Any] = {
        "name": "s",
        "model": {"name": "Llama-3.2-1B-Instruct"},
        "backend": {"kind": "twin", "gpu": "H100", "gpus": 1},
        "space": {"page_size": [1, 64], "chunked_prefill_size": [1000, 4096],
                  "max_running_requests": [8, 16]},
        "workload": {"scenarios": ["D(64,8)"], "concurrency": [2], "max_requests_per_level": 4},
        "search": {"prescreen": {"top_k": 1}},
    }
    data.update(changes)
    return spec_from_dict(data)


def test_the_prescreen_never_estimates_a_config_sglang_refuses() -> None:
    screened = prescreen(_prescreen_spec(), capacity=1)
    estimated = [p.config for p in screened.predictions]
    assert len(estimated) == 6  # 8 less the two with page 64 and chunk 1000
    assert all(serverargs.startup_problem(c, "H100") is None for c in estimated)
    assert screened.reasons == {}


def test_the_prescreen_refuses_flags_the_twins_version_lacks() -> None:
    later = _prescreen_spec(
        backend={"kind": "local", "gpus": 1, "sglang_version": "0.5.23"},
        space={"cuda_graph_max_bs_decode": [8, 16]},
        search={"prescreen": {"gpu": "H100"}},
    )
    with pytest.raises(NotSupportedError, match="no cuda_graph_max_bs_decode"):
        prescreen(later, capacity=1)
