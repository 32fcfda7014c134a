"""Tests of ``python -m twin estimate``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from twin import _cli


def test_estimate_json_from_the_command_line() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "twin",
            "estimate",
            "--model-path",
            "Llama-3.1-8B-Instruct",
            "--gpu",
            "A100-80G",
            "--mem-frac",
            "0.8",
            "--scenario",
            "D(1024,256)",
            "--concurrency",
            "8",
            "--max-requests",
            "32",
            "--seed",
            "3",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    metrics = json.loads(result.stdout)["aggregated_metrics"]
    assert metrics["num_concurrency"] == 8 and metrics["num_requests"] == 32
    assert metrics["stats"]["tpot"]["mean"] > 0


def test_summary_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        _cli.main(
            [
                "estimate",
                "--model-path",
                "Qwen3-8B",
                "--scenario",
                "D(100,100)",
                "--request-rate",
                "2",
                "--max-requests",
                "10",
            ]
        )
        == 0
    )
    assert "output throughput" in capsys.readouterr().out
    assert (
        _cli.main(
            [
                "estimate",
                "--model-path",
                "Llama-3.1-8B-Instruct",
                "--mem-fraction-static",
                "0.1",
                "--scenario",
                "D(1,1)",
                "--num-prompts",
                "1",
            ]
        )
        == 1
    )
    assert "Not enough memory" in capsys.readouterr().err
    for argv in (
        ["--scenario", "D(1,1)"],  # no mode
        ["--scenario", "D(1,1)", "--concurrency", "1", "--num-prompts", "1"],
        ["--scenario", "Z(1)", "--concurrency", "1"],
        ["--scenario", "D(1,1)", "--concurrency", "1", "--tp", "0"],
        ["--scenario", "D(1,1)", "--num-prompts", "1000000000000"],
        ["--bench-serving-random", "8000,1000", "--num-prompts", "1000000000000"],
    ):
        with pytest.raises(SystemExit) as exc:
            _cli.main(["estimate", "--model-path", "Llama-3.1-8B-Instruct", *argv])
        assert exc.value.code == 2


def test_bench_serving_random_replays_a_published_run(capsys: pytest.CaptureFixture[str]) -> None:
    # sgl-cookbook DeepSeek-R1.md: --random-input-len 1000 --random-output-len 1000
    # --num-prompts 80 --max-concurrency 16 sent 39,668 input tokens in all.
    argv = ["estimate", "--model-path", "Llama-3.1-8B-Instruct", "--bench-serving-random",
            "1000,1000", "--concurrency", "16", "--spawn-rate", "inf", "--max-requests", "80",
            "--json"]
    assert _cli.main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)["aggregated_metrics"]
    assert metrics["num_completed_requests"] == 80
    assert metrics["stats"]["num_input_tokens"]["sum"] == 39668
    assert metrics["scenario"] == "bench_serving random 1000,1000"
    for bad, needle in (("1000", "is not IN,OUT"), ("1000,x", "is not IN,OUT"),
                        ("1000,1000,2", "range_ratio")):
        with pytest.raises(SystemExit) as exc:
            _cli.main([*argv[:4], bad, *argv[5:]])
        assert exc.value.code == 2 and needle in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _cli.main(argv[:4] + ["1000,1000", "--concurrency", "16"])
    assert "--num-prompts as --max-requests" in capsys.readouterr().err
