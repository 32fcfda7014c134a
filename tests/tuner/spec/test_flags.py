"""A spec's SGLang flags: any flag of the chosen version, every error at once, SGLang's
start-up rules as built-in constraints, and one list of GPU types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import twin
from tests.tuner.spec.test_study import ROOT, errors_of, spec_data
from tuner.cli import main
from tuner.spec import GPU_TYPES, load_spec, spec_from_dict
from tuner.spec._base import GpuType


def test_every_error_of_a_spec_at_once() -> None:
    errors = errors_of(spec_data(
        name="Bad Name",
        space={"tp_size": [1, "two"], "mem_fraction_static": {"low": 0.9, "high": 0.7},
               "max_runing_requests": [8], "port": [1]},
        fixed={"speculative_algorithm": "MEDUSA"},
        search={"derived": {"page_size": "tp_size * 16", "attention_backend": "tp_size"}},
    ))
    assert "pattern" in errors["name"]
    assert "low must be smaller" in errors["space.mem_fraction_static"]
    assert "'two' must be a finite number" in errors["space.tp_size"]
    assert "did you mean 'max_running_requests'" in errors["space.max_runing_requests"]
    assert "set by the backend" in errors["space.port"]
    assert "one of EAGLE" in errors["fixed.speculative_algorithm"]
    assert "only numeric flags" in errors["search.derived.attention_backend"]
    assert "search.derived.page_size" not in errors


def test_any_flag_of_the_version_may_be_fixed_or_searched() -> None:
    spec = spec_from_dict(spec_data(
        fixed={"speculative_algorithm": "EAGLE", "enable_dp_attention": True},
        space={"tp_size": [1, 2], "page_size": [1, 16], "attention_backend": ["fa3", "triton"]},
    ))
    assert spec.sglang_version == twin._resolve.VERSION
    assert spec.fixed["speculative_algorithm"] == "EAGLE"


def test_the_version_chooses_the_table() -> None:
    later = spec_data(backend={"kind": "local", "gpus": 4, "sglang_version": "0.5.23"},
                      space={"tp_size": [1, 2], "cuda_graph_max_bs_decode": [64, 128]})
    assert spec_from_dict(later).sglang_version == "0.5.23"
    errors = errors_of({**later, "space": {"cuda_graph_max_bs": [64]}})
    assert "not a flag of SGLang 0.5.23" in errors["space.cuda_graph_max_bs"]
    assert "supported versions" in errors_of(spec_data(
        backend={"kind": "local", "sglang_version": "0.4.9"}))["backend.sglang_version"]
    assert "simulates SGLang" in errors_of(spec_data(
        backend={"kind": "twin", "sglang_version": "0.5.23"}))["backend.sglang_version"]


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        ({"fixed": {"cuda_graph_max_bs": 0}}, "fixed", "disable_cuda_graph"),
        ({"fixed": {"page_size": 3}}, "fixed", "auto size"),
        ({"fixed": {"attention_backend": "trtllm_mha"}}, "fixed.attention_backend",
         "Blackwell"),
        ({"space": {"attention_backend": ["fa3", "trtllm_mha"]}}, "space.attention_backend",
         "Blackwell"),
    ],
)
def test_sglang_start_up_rules_refuse_specs(change: dict[str, Any], path: str,
                                            fragment: str) -> None:
    errors = errors_of(spec_data(**change))
    assert fragment in errors[path], errors


def test_b200_may_use_trtllm_mha() -> None:
    spec = spec_from_dict(spec_data(backend={"kind": "twin", "gpu": "B200", "gpus": 4},
                                    fixed={"attention_backend": "trtllm_mha"}))
    assert spec.gpu_type == "B200"


def test_searches_and_grids_skip_configs_sglang_refuses() -> None:
    spec = spec_from_dict(spec_data(
        space={"page_size": [1, 64], "chunked_prefill_size": [1000, 4096],
               "cuda_graph_max_bs": [0, 8], "disable_cuda_graph": [False, True]},
        search={"algorithm": "grid"},
    ))
    points = list(spec.grid())
    assert {"page_size": 64, "chunked_prefill_size": 1000, "cuda_graph_max_bs": 8,
            "disable_cuda_graph": False} not in points
    assert {"page_size": 1, "chunked_prefill_size": 1000, "cuda_graph_max_bs": 0,
            "disable_cuda_graph": False} not in points
    assert {"page_size": 1, "chunked_prefill_size": 1000, "cuda_graph_max_bs": 0,
            "disable_cuda_graph": True} in points
    # 16 points less 4 with page 64 / chunk 1000, less the 3 other (page, chunk) pairs with
    # graphs on and none to capture.
    assert len(points) == 16 - 4 - 3


def test_one_list_of_gpu_types() -> None:
    assert GPU_TYPES == twin.GPUS and "B200" in GPU_TYPES
    assert GpuType.__args__ == twin.GPUS  # type: ignore[attr-defined]
    spec = spec_from_dict(spec_data(search={"prescreen": {"gpu": "B200"}}))
    assert spec.search.prescreen is not None and spec.search.prescreen.gpu == "B200"


def test_searching_only_unmodelled_flags_on_the_twin_is_a_caution() -> None:
    data = spec_data(space={"page_size": [1, 16], "enable_two_batch_overlap": [True, False]})
    (caution,) = spec_from_dict(data).cautions()
    assert "does not model enable_two_batch_overlap, page_size" in caution
    assert spec_from_dict({**data, "backend": {"kind": "local", "gpus": 4}}).cautions() == []
    assert spec_from_dict(spec_data()).cautions() == []


@pytest.mark.parametrize("example", ["local_gpu", "ome_cluster"])
def test_unmodelled_flags_reach_the_real_servers_argv(example: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load((ROOT / "examples" / f"{example}.yaml").read_text())
    data["fixed"] = {**data.get("fixed", {}), "speculative_algorithm": "EAGLE",
                     "enable_dp_attention": True}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = load_spec(path)
    params = {name: values[0] if isinstance(values, list) else values.low
              for name, values in spec.space.items()}
    params["cuda_graph_max_bs"] = min(params.get("cuda_graph_max_bs", 1),
                                      params.get("max_running_requests", 1))
    assert main(["render", str(path), "--params", json.dumps(params)]) == 0
    # A launch command, or a manifest's args list ("- word" lines): the words in order.
    words = [w for w in capsys.readouterr().out.replace('"', " ").split() if w != "-"]
    assert "--enable-dp-attention" in words
    assert words[words.index("--speculative-algorithm") + 1] == "EAGLE"
