"""Tests of twin._args: SGLang's flag names, defaults, aliases and validation."""

from __future__ import annotations

from typing import Any

import pytest

from twin import _args


def test_defaults_match_sglang() -> None:
    args = _args.parse_argv(["--model-path", "Llama-3.1-8B-Instruct"])
    assert (args.host, args.port, args.tp_size, args.dp_size) == ("127.0.0.1", 30000, 1, 1)
    assert args.max_prefill_tokens == 16384
    assert args.schedule_policy == "fcfs"
    assert args.schedule_conservativeness == 1.0
    assert args.stream_interval == 1
    assert args.mem_fraction_static is None  # auto
    assert args.chunked_prefill_size is None  # auto
    assert args.gpu == "H100" and args.num_gpus == 8 and args.time_scale == 1.0


@pytest.mark.parametrize("flag", ["--tp", "--tp-size", "--tensor-parallel-size"])
def test_tp_aliases(flag: str) -> None:
    assert _args.parse_argv(["--model-path", "m", flag, "4"]).tp_size == 4


def test_abbreviation_like_sglang() -> None:
    # argparse prefix matching gives --mem-frac, as in SGLang.
    args = _args.parse_argv(["--model", "m", "--mem-frac", "0.8", "--dp", "2"])
    assert args.mem_fraction_static == 0.8 and args.dp_size == 2


def test_unknown_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _args.parse_argv(["--model-path", "m", "--no-such-flag", "1"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_out_of_range_value_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _args.parse_argv(["--model-path", "m", "--mem-fraction-static", "1.2"])
    assert "--mem-fraction-static must be in (0, 1)" in capsys.readouterr().err


def test_mapping_uses_the_same_parser() -> None:
    args = _args.parse_mapping(
        {
            "model_path": "m",
            "tp_size": 2,
            "disable_cuda_graph": True,
            "enable_mixed_chunk": False,
            "context_length": None,
        },
        gpu="A100-80G",
        num_gpus=4,
    )
    assert args.tp_size == 2 and args.disable_cuda_graph and not args.enable_mixed_chunk
    assert args.gpu == "A100-80G" and args.num_gpus == 4


@pytest.mark.parametrize(
    ("mapping", "needle"),
    [
        ({"model_path": "m", "tp_size": "two"}, "--tp-size"),
        ({"model_path": "m", "schedule_policy": "sjf"}, "--schedule-policy"),
        ({"model_path": "m", "chunked_prefill_size": 0}, "--chunked-prefill-size"),
        ({"model_path": "m", "bogus": 1}, "bogus"),
        ({"model_path": "m", "disable_radix_cache": "yes"}, "--disable-radix-cache"),
        ({"tp_size": 1}, "--model-path"),
    ],
)
def test_mapping_errors_name_the_flag(mapping: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        _args.parse_mapping(mapping)


def test_twin_only_key_must_be_keyword() -> None:
    with pytest.raises(ValueError, match="keyword"):
        _args.parse_mapping({"model_path": "m", "gpu": "H200"}, gpu="H100")


def test_faults_parse_and_reject() -> None:
    args = _args.parse_argv(["--model-path", "m", "--fault", "crash-after=3", "--fault", "hang"])
    assert args.fault == ["crash-after=3", "hang"]
    with pytest.raises(ValueError, match="fault"):
        _args.parse_mapping({"model_path": "m", "fault": ["explode"]})


# --- every SGLang flag accepted; the modelled ones agree with SGLang's source ---------------


@pytest.fixture()
def sglang_table(sglang_wheel: Any) -> dict[str, dict[str, Any]]:
    from tests.tuner.serverargs.support import wheel_table

    return {row["name"]: row for row in wheel_table(sglang_wheel)["flags"]}


def test_modelled_flags_agree_with_sglang(sglang_table: dict[str, dict[str, Any]]) -> None:
    actions = {a.dest: a for a in _args.build_parser()._actions}
    modelled = _args.modelled()
    assert len(modelled) >= 30
    for name in sorted(modelled):
        row, action = sglang_table[name], actions[name]
        assert list(action.option_strings) == row["options"], name
        assert action.default == row["default"], f"{name}: twin {action.default!r}, " \
            f"SGLang {row['default']!r}"
        assert (list(action.choices) if action.choices else None) == row["choices"], name


def test_every_sglang_flag_is_accepted(sglang_table: dict[str, dict[str, Any]]) -> None:
    parser = _args.build_parser()
    options = parser._option_string_actions
    for name, row in sglang_table.items():
        for option in row["options"]:
            assert options[option].dest == name, option


def test_unmodelled_flags_are_accepted_and_listed() -> None:
    args = _args.parse_argv(["--model-path", "m", "--speculative-algorithm", "EAGLE",
                             "--enable-two-batch-overlap", "--page-size", "16",
                             "--quantization", "awq", "--kv-cache-dtype", "bf16"])
    assert args.speculative_algorithm == "EAGLE" and args.enable_two_batch_overlap
    assert _args.not_modelled(args) == ["enable_two_batch_overlap", "page_size"]
    assert _args.not_modelled(_args.parse_argv(["--model-path", "m"])) == []
    with pytest.raises(ValueError, match="--speculative-algorithm"):
        _args.parse_mapping({"model_path": "m", "speculative_algorithm": "MEDUSA"})


@pytest.mark.parametrize(
    ("mapping", "gpu", "needle"),
    [
        ({"cuda_graph_max_bs": 0}, "H100", "unless --disable-cuda-graph"),
        ({"attention_backend": "trtllm_mha"}, "H100", "Blackwell"),
        ({"page_size": 3}, "H100", "divisible by page_size"),  # auto chunk 8192
        ({"page_size": 64, "chunked_prefill_size": 1000}, "H100", "divisible by page_size"),
        ({"log_level": "loud"}, "H100", "--log-level"),
    ],
)
def test_sglang_start_up_refusals(mapping: dict[str, object], gpu: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        _args.parse_mapping({"model_path": "m", **mapping}, gpu=gpu)


def test_what_sglang_allows_passes() -> None:
    _args.parse_mapping({"model_path": "m", "cuda_graph_max_bs": 0, "disable_cuda_graph": True})
    _args.parse_mapping({"model_path": "m", "attention_backend": "trtllm_mha",
                         "page_size": 64}, gpu="B200")
    _args.parse_mapping({"model_path": "m", "page_size": 64, "chunked_prefill_size": -1})


def test_server_and_estimate_say_what_they_do_not_model() -> None:
    import httpx

    import twin
    from tests.twin import support

    flags = {"model_path": "Llama-3.2-1B-Instruct", "speculative_algorithm": "EAGLE",
             "enable_two_batch_overlap": True, "enable_hierarchical_cache": True}
    result = twin.estimate(flags, scenario="D(16,4)", concurrency=1, max_requests=2)
    assert result["not_modelled"] == ["enable_hierarchical_cache", "enable_two_batch_overlap"]
    port = support.free_port()
    proc = support.launch(["--model-path", "Llama-3.2-1B-Instruct", "--port", str(port),
                           "--startup-time-scale", "1000", "--speculative-algorithm", "EAGLE",
                           "--enable-two-batch-overlap", "--enable-hierarchical-cache"])
    url = f"http://127.0.0.1:{port}"
    try:
        support.wait_ready(url, proc)
        info = httpx.get(f"{url}/get_server_info").json()
    finally:
        log = support.stop(proc)
    assert info["not_modelled"] == ["enable_hierarchical_cache", "enable_two_batch_overlap"]
    # speculative decoding is modelled: resolved as SGLang resolves it, and served
    assert info["speculative_algorithm"] == "EAGLE" and info["speculative_num_steps"] == 5
    assert info["max_running_requests"] == 48
    assert "Not modelled by the twin (accepted, no effect): enable_hierarchical_cache, " \
        "enable_two_batch_overlap" in log


def test_every_value_the_tuner_accepts_parses(sglang_table: dict[str, dict[str, Any]]) -> None:
    from tuner import serverargs

    # Every choice SGLang lists, and the top of the tuner's own bound of each searched flag.
    tops = {name: [int(limit.high)] for name, limit in serverargs.LIMITS.items()}
    tops["mem_fraction_static"] = [serverargs.LIMITS["mem_fraction_static"].high]
    for name, row in sglang_table.items():
        if name in serverargs.MANAGED or row["type"] == "bool":
            continue
        for value in row["choices"] or tops.get(name, []):
            assert serverargs.check_value(name, value) is None
            args = _args.parse_mapping({"model_path": "m", name: value}, gpu="B200")
            assert getattr(args, name) == value or args.__dict__[name] == [value], name
