"""Flag values checked against the table and our limits, and the argv they become."""

from __future__ import annotations

import pytest

from tuner import serverargs


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("tp_size", "two", "number"),
        ("tp_size", 1.5, "integer"),
        ("tp_size", 0, "between 1 and 64"),
        ("mem_fraction_static", float("nan"), "finite"),
        ("enable_dp_attention", "yes", "true or false"),
        ("speculative_algorithm", "MEDUSA", "one of EAGLE"),
        ("quantization", "int3", "one of"),
        ("served_model_name", 3, "string"),
        ("json_model_override_args", "--port", "not starting with '-'"),
        ("json_model_override_args", "a\nb", "one line"),
    ],
)
def test_bad_values_say_why(name: str, value: object, fragment: str) -> None:
    problem = serverargs.check_value(name, value)
    assert problem is not None and fragment in problem, problem


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("speculative_algorithm", "EAGLE"),
        ("enable_dp_attention", True),
        ("chunked_prefill_size", -1),
        ("page_size", 64),
        ("quantization", "awq"),
        ("kv_cache_dtype", "fp8_e4m3"),
        ("json_model_override_args", '{"rope_scaling": {"factor": 2}}'),
        ("speculative_num_steps", 3),  # an int flag with no limit of ours
    ],
)
def test_values_sglang_takes_pass(name: str, value: object) -> None:
    assert serverargs.check_value(name, value) is None


def test_versions_differ_in_their_flags() -> None:
    assert "cuda_graph_max_bs" in serverargs.table("0.5.5").flags
    assert "cuda_graph_max_bs" not in serverargs.table("0.5.23").flags
    assert "cuda_graph_max_bs_decode" in serverargs.suggest("cuda_graph_max_bs", "0.5.23")
    with pytest.raises(ValueError, match="supported versions: 0.5.5"):
        serverargs.table("0.4.0")
    with pytest.raises(ValueError, match="no flag table"):
        serverargs.table("../../etc/passwd")


def test_argv_uses_the_tables_spelling() -> None:
    argv = serverargs.to_argv(
        {"tp_size": 2, "speculative_algorithm": "EAGLE", "enable_dp_attention": True,
         "disable_radix_cache": False, "max_running_requests": 64.0}
    )
    assert argv == ["--enable-dp-attention", "--max-running-requests", "64",
                    "--speculative-algorithm", "EAGLE", "--tp-size", "2"]


def test_the_twin_models_a_subset_of_the_table() -> None:
    modelled = serverargs.twin_modelled()
    assert modelled < set(serverargs.table().flags)
    assert {"tp_size", "mem_fraction_static", "chunked_prefill_size"} <= modelled
    assert {"enable_dp_attention", "ep_size", "moe_a2a_backend"} <= modelled  # MoE (issue 14)
    assert {"speculative_algorithm", "speculative_num_draft_tokens"} <= modelled
    assert "speculative_ngram_min_match_window_size" not in modelled
