"""Real genai-bench against the twin, unchanged: metrics respond like SGLang's."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import twin
from tests.twin import support


def _genai_bench() -> str:
    found = pathlib.Path(sys.executable).with_name("genai-bench")
    path = str(found) if found.exists() else shutil.which("genai-bench")
    if path is None:
        pytest.fail("genai-bench is not installed")
    return path


@pytest.mark.slow
def test_genai_bench_runs_against_the_twin(tmp_path: pathlib.Path) -> None:
    with support.running_twin(
        "--model-path", "Llama-3.1-8B-Instruct", "--time-scale", "4", "--log-level", "warning"
    ) as url:
        subprocess.run(
            [
                _genai_bench(),
                "benchmark",
                "--api-backend",
                "sglang",
                "--api-base",
                url,
                "--api-key",
                "x",
                "--api-model-name",
                "Llama-3.1-8B-Instruct",
                "--model-tokenizer",
                str(twin.BUNDLED_TOKENIZER),
                "--task",
                "text-to-text",
                "--traffic-scenario",
                "D(1024,64)",
                "--num-concurrency",
                "2",
                "--num-concurrency",
                "16",
                "--max-requests-per-run",
                "20",
                "--max-time-per-run",
                "1",
                "--experiment-base-dir",
                str(tmp_path),
                "--experiment-folder-name",
                "run",
                "--log-dir",
                str(tmp_path / "logs"),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=180,
            check=True,
            cwd=tmp_path,
            env={**os.environ, "ENABLE_UI": "false", "HF_HUB_OFFLINE": "1"},
        )
    results = {}
    for level in (2, 16):
        (path,) = (tmp_path / "run").glob(f"D1024_64_*_num_concurrency_{level}_time_*s.json")
        results[level] = json.loads(path.read_text())["aggregated_metrics"]
    low, high = results[2], results[16]
    assert low["num_error_requests"] == high["num_error_requests"] == 0
    assert low["stats"]["num_output_tokens"]["mean"] == 64
    assert 1024 <= low["stats"]["num_input_tokens"]["mean"] < 1100  # + chat template
    # 8x the load gives SGLang (and the twin) several times the throughput; genai-bench's own
    # client, sharing 2 loaded cores with the server at --time-scale 4, caps what it can
    # drive at 16 users (measured 2.5x-3.5x in full suite runs), so 2x is the bar here.
    assert (
        high["mean_output_throughput_tokens_per_s"]
        > 2 * low["mean_output_throughput_tokens_per_s"]
    )
    assert high["stats"]["tpot"]["mean"] > low["stats"]["tpot"]["mean"]
