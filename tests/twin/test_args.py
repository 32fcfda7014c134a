"""Tests of twin._args: SGLang's flag names, defaults, aliases and validation."""

from __future__ import annotations

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
