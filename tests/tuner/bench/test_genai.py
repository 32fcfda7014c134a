"""genai-bench runner against a real twin: metrics parsed and rescaled; failures classified."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
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
    process, deployment = start_twin("--enable-metrics")
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
    # The server's own view rides along, in the same (simulated) units as the rescaled client.
    assert level.server is not None and level.server.ttft is not None
    assert level.server.requests >= level.num_completed
    assert 0 < (level.server.ttft.mean_ms or 0) <= level.ttft_mean_ms * 1.05
    argv = genai.build_argv(_server(healthy), workload=WORKLOAD, scenario="D(128,32)",
                            concurrency=4, tokenizer="tok", out_dir=tmp_path)
    assert "--api-backend" in argv and argv[argv.index("--api-backend") + 1] == "sglang"
    assert argv[argv.index("--max-time-per-run") + 1] == "1"  # 60 s as whole minutes


def test_users_start_at_the_spawn_rate_in_the_servers_time() -> None:
    # genai-bench's users start at --spawn-rate per wall second; a twin S times faster than
    # real time must see them start at the rate the estimator assumes in its own time.
    server = genai.Server("http://127.0.0.1:1", "m", time_scale=10.0)

    def rate(workload: WorkloadSpec, concurrency: int) -> str:
        argv = genai.build_argv(server, workload=workload, scenario="D(128,32)",
                                concurrency=concurrency, tokenizer="tok", out_dir=Path("/x"))
        return argv[argv.index("--spawn-rate") + 1]

    assert rate(WORKLOAD, 4) == "40"  # genai-bench's default, the concurrency, made explicit
    assert rate(WORKLOAD.model_copy(update={"spawn_rate": 2}), 64) == "20"


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


def test_a_starved_client_is_flagged_client_bound(tmp_path: Path) -> None:
    """genai-bench frozen 95 % of the time for 3 s of its level (SIGSTOP/SIGCONT on its
    process group): a client with a twentieth of a CPU reads most first tokens late."""
    process, deployment = start_twin("--enable-metrics", "--time-scale", "1")
    done = threading.Event()

    before = _answered(deployment.endpoint)

    def throttle() -> None:  # for 3 s from the level's first answer
        while not done.is_set() and _answered(deployment.endpoint) < before + 1:
            time.sleep(0.02)
        pids, until = _genai_bench_children(), time.monotonic() + 3
        while not done.is_set() and time.monotonic() < until:
            for pid in pids:
                _signal(pid, signal.SIGSTOP)
            time.sleep(0.1)  # first tokens of requests sent just before arrive meanwhile
            for pid in pids:
                _signal(pid, signal.SIGCONT)
            time.sleep(0.005)

    thread = threading.Thread(target=throttle, daemon=True)
    thread.start()
    workload = WorkloadSpec(scenarios=["D(128,16)"], concurrency=[4], max_requests_per_level=24)
    try:
        level = genai.run(genai.Server(deployment.endpoint, MODEL), workload=workload,
                          scenario="D(128,16)", concurrency=4,
                          tokenizer=str(twin.BUNDLED_TOKENIZER), out_dir=tmp_path)
    finally:
        done.set()
        thread.join()
        process.kill()
        process.wait()
    assert level.server is not None and level.server.ttft is not None
    assert level.client_bound is not None and "(client) vs" in level.client_bound, level
    # Starved, not merely slow: a good part of the client's TTFT is its own waiting (how
    # much depends on how many first tokens fall in the 3 s: 40 % in some runs, two thirds
    # or more in most).
    assert level.ttft_mean_ms > 1.5 * (level.server.ttft.mean_ms or 0), level


def _answered(endpoint: str) -> float:
    """Requests the twin has answered so far."""
    from tuner.bench._prometheus import scrape

    return (scrape(endpoint) or {}).get("sglang:num_requests_total", 0.0)


def _genai_bench_children() -> list[int]:
    """The genai-bench processes this test process started (Linux /proc)."""
    pids = []
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"_genai_main.py" in cmdline:
                pids.append(int(pid))
    return pids


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
