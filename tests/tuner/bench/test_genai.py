"""genai-bench runner against a real twin: metrics parsed and rescaled; failures classified."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import twin
from tuner.backends import Deployment
from tuner.bench import genai
from tuner.exceptions import BenchmarkError
from tuner.spec import WorkloadSpec

pytestmark = pytest.mark.slow
MODEL = "Llama-3.1-8B-Instruct"
SCALE = 8.0


def start_twin(*extra: str) -> tuple[subprocess.Popen[bytes], Deployment]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "twin.launch_server", "--model-path", MODEL, "--port", str(port),
         "--time-scale", str(SCALE), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if genai.probe(endpoint, timeout_s=2) is None:
            break
        time.sleep(0.2)
    return process, Deployment(name="t", endpoint=endpoint, served_model=MODEL,
                               time_scale=SCALE)


@pytest.fixture
def healthy() -> Iterator[Deployment]:
    process, deployment = start_twin()
    yield deployment
    process.kill()
    process.wait()


def _server(deployment: Deployment) -> genai.Server:
    return genai.Server(deployment.endpoint, deployment.served_model, deployment.time_scale)


WORKLOAD = WorkloadSpec(scenarios=["D(128,32)"], concurrency=[4], max_requests_per_level=12)


def test_one_level_is_measured_and_rescaled(healthy: Deployment, tmp_path: Path) -> None:
    level = genai.run(_server(healthy), workload=WORKLOAD, scenario="D(128,32)", concurrency=4,
                      tokenizer=str(twin.BUNDLED_TOKENIZER), out_dir=tmp_path / "l1")
    assert level.concurrency == 4 and level.num_errors == 0 and level.num_requests >= 12
    assert level.error_rate == 0.0
    # Rescaled to real time: an 8B decode step on an H100 takes milliseconds, not tenths.
    assert 2.0 < level.tpot_p50_ms < 60.0, level
    assert level.output_throughput > 0 and level.ttft_p99_ms >= level.ttft_p50_ms
    argv = genai.build_argv(_server(healthy), workload=WORKLOAD, scenario="D(128,32)",
                            concurrency=4, tokenizer="tok", out_dir=tmp_path)
    assert "--api-backend" in argv and argv[argv.index("--api-backend") + 1] == "sglang"
    assert argv[argv.index("--max-time-per-run") + 1] == "1"  # 60 s as whole minutes


def test_a_level_where_every_request_fails_has_error_rate_1(tmp_path: Path) -> None:
    process, deployment = start_twin("--fault", "http500-rate=1.0")
    try:
        level = genai.run(_server(deployment), workload=WORKLOAD, scenario="D(128,32)",
                          concurrency=2, tokenizer=str(twin.BUNDLED_TOKENIZER), out_dir=tmp_path)
    finally:
        process.kill()
        process.wait()
    assert level.error_rate == 1.0 and level.num_errors > 0


def test_a_dead_server_is_reported_not_raised(tmp_path: Path) -> None:
    process, deployment = start_twin()
    process.kill()
    process.wait()
    assert "does not answer" in (genai.probe(deployment.endpoint) or "")
    # genai-bench still runs: every request fails to connect, so the level is all errors.
    level = genai.run(_server(deployment), workload=WORKLOAD, scenario="D(128,32)", concurrency=2,
                      tokenizer=str(twin.BUNDLED_TOKENIZER), out_dir=tmp_path)
    assert level.error_rate == 1.0


def test_genai_bench_that_cannot_start_is_a_benchmark_error(healthy: Deployment,
                                                            tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError) as info:
        genai.run(_server(healthy), workload=WORKLOAD, scenario="D(128,32)", concurrency=2,
                  tokenizer=str(tmp_path / "no-such-tokenizer"), out_dir=tmp_path)
    assert info.value.returncode not in (0, None) and info.value.log_path
