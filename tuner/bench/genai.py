"""genai-bench as a subprocess: a fresh result folder per trial and level, parsed from JSON."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from tuner.bench import _prometheus
from tuner.bench.metrics import LevelMetrics
from tuner.exceptions import BenchmarkError, ServerExitedError

if TYPE_CHECKING:
    from tuner.spec import WorkloadSpec

__all__ = ["Server", "build_argv", "probe", "run"]

logger = logging.getLogger(__name__)
# genai-bench needs some key for the sglang backend; real servers started by the tuner have none.
_API_KEY = "autotuner"
# Seconds genai-bench spends outside the level itself: import, start-up, sleeps between phases.
_FIXED_OVERHEAD_S = 120
# Seconds between two looks at the server while a level runs: a dead server is noticed within
# this, while the look (a process status, a pod list) stays negligible next to the level.
_WATCH_S = 2.0


def probe(endpoint: str, timeout_s: float = 10.0) -> str | None:
    """None when the server's ``/health`` answers 200, else why not."""
    try:
        response = httpx.get(f"{endpoint}/health", timeout=timeout_s)
    except httpx.HTTPError as e:
        return f"server at {endpoint} does not answer /health ({type(e).__name__})"
    if response.status_code != 200:
        return f"server at {endpoint} answered /health with HTTP {response.status_code}"
    return None


@dataclass(frozen=True)
class Server:
    """What genai-bench needs to know of the server it loads.

    Attributes:
        endpoint: base URL (``http://host:port``, no ``/v1``).
        model: the served model name requests carry.
        time_scale: how much faster than real time the server runs; results are rescaled.
    """

    endpoint: str
    model: str
    time_scale: float = 1.0


def spawn_rate(workload: WorkloadSpec, concurrency: int, time_scale: float) -> int:
    """genai-bench's --spawn-rate (users per wall second): the spec's rate, or the level's
    concurrency as genai-bench defaults to, sped up by the twin's time scale so that the
    server sees its users start at the rate the estimator assumes (it runs in server time)."""
    return max(1, round((workload.spawn_rate or concurrency) * time_scale))


def build_argv(
    server: Server,
    *,
    workload: WorkloadSpec,
    scenario: str,
    concurrency: int,
    tokenizer: str,
    out_dir: Path,
    dataset: Path | None = None,
) -> list[str]:
    """The genai-bench command for one level (reports off, everything explicit).

    Args:
        dataset: the prompts as a JSON list the tuner wrote
            (:func:`tuner.workload.write_for_genai_bench`), for ``workload.dataset``: the
            scenario ``dataset`` sends them as they are, a D/N/U scenario cuts their text to
            its lengths.
    """
    return [
        sys.executable,
        str(Path(__file__).with_name("_genai_main.py")),
        "benchmark",
        "--api-backend",
        "sglang",
        "--api-base",
        server.endpoint,
        "--api-key",
        _API_KEY,
        "--api-model-name",
        server.model,
        "--model-tokenizer",
        tokenizer,
        "--task",
        "text-to-text",
        "--traffic-scenario",
        scenario,
        "--num-concurrency",
        str(concurrency),
        "--spawn-rate",
        str(spawn_rate(workload, concurrency, server.time_scale)),
        "--max-requests-per-run",
        str(workload.max_requests_per_level),
        "--max-time-per-run",
        str(_minutes(workload.max_seconds_per_level)),
        "--experiment-base-dir",
        str(out_dir),
        "--experiment-folder-name",
        "result",
        "--log-dir",
        str(out_dir),
        *(["--dataset-path", str(dataset)] if dataset is not None else []),
    ]


def run(
    server: Server,
    *,
    workload: WorkloadSpec,
    scenario: str,
    concurrency: int,
    tokenizer: str,
    out_dir: Path,
    abort: Callable[[], str | None] | None = None,
) -> LevelMetrics:
    """Benchmark one level and return its metrics in real-time units.

    The server's ``/metrics`` are read just before and after genai-bench runs, and what the
    server counted is attached to the level as its own view
    (:meth:`LevelMetrics.with_server`), when the server has metrics.

    A level where every request failed is returned with an error rate of 1, not raised: the
    server answered, it just could not serve (the SLO check then rejects the level).

    Args:
        abort: polled every few seconds while genai-bench runs; when it returns a reason
            (the server died), genai-bench is killed and ServerExitedError raised.

    Raises:
        BenchmarkError: genai-bench crashed, timed out, or wrote no result.
        ServerExitedError: ``abort`` returned a reason.
        SpecError: ``workload.dataset`` cannot be read.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = None
    if workload.dataset is not None:
        from tuner.workload import write_for_genai_bench

        dataset = write_for_genai_bench(workload.dataset, out_dir)
    argv = build_argv(
        server,
        workload=workload,
        scenario=scenario,
        concurrency=concurrency,
        tokenizer=tokenizer,
        out_dir=out_dir,
        dataset=dataset,
    )
    log_path = out_dir / "genai-bench.out"
    timeout = _minutes(workload.max_seconds_per_level) * 60 + _FIXED_OVERHEAD_S
    env = {
        **os.environ,
        "ENABLE_UI": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    logger.debug("genai-bench: %s", argv)
    before = _prometheus.scrape(server.endpoint)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=out_dir,
            start_new_session=True,  # its workers die with it when a level is cut short
        )
        try:
            why = _wait(process, timeout, abort)
            timed_out = why is None and process.poll() is None
        finally:
            _kill(process)
    if why is not None:
        raise ServerExitedError(
            f"{why} (during level c={concurrency}; genai-bench stopped)",
            why=why,
            log_path=str(log_path),
        )
    if timed_out:
        raise BenchmarkError(
            f"genai-bench did not finish level c={concurrency} in {timeout} s; the server "
            f"may be wedged; see {log_path}",
            log_path=str(log_path),
        )
    result_dir = out_dir / "result"
    results = sorted(result_dir.glob(f"*_num_concurrency_{concurrency}_time_*s.json"))
    if results:
        data = json.loads(results[-1].read_text())
        level = LevelMetrics.from_genai_bench(
            data["aggregated_metrics"],
            time_unit=data.get("_time_unit", "s"),
            time_scale=server.time_scale,
        )
        after = _prometheus.scrape(server.endpoint) if before is not None else None
        view = None
        if before is not None and after is not None:
            wall_s = level.duration_s / server.time_scale
            view = _prometheus.server_view(before, after, wall_s=wall_s)
        return level if view is None else level.with_server(view)
    failed = sorted(result_dir.glob("debug_for_run_*.json"))
    if failed:
        return _all_failed(json.loads(failed[-1].read_text()), scenario, concurrency)
    raise BenchmarkError(
        f"genai-bench exited with code {process.returncode} and wrote no result for level "
        f"c={concurrency}: {_tail(log_path)}; full log: {log_path}",
        returncode=process.returncode,
        log_path=str(log_path),
    )


def _wait(
    process: subprocess.Popen[bytes], timeout_s: float, abort: Callable[[], str | None] | None
) -> str | None:
    """Wait for genai-bench to exit within ``timeout_s``; the abort reason if one came first.

    Returns with the process still running when the timeout passed.
    """
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            process.wait(timeout=min(_WATCH_S, left))
            return None
        except subprocess.TimeoutExpired:
            pass
        if abort is not None and (why := abort()) is not None:
            return why
    return None


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill genai-bench and whatever it started, unless it already exited."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def _all_failed(debug: dict[str, object], scenario: str, concurrency: int) -> LevelMetrics:
    aggregated = debug.get("aggregated_metrics", debug)
    assert isinstance(aggregated, dict)
    errors = sum(int(n) for n in (aggregated.get("error_codes_frequency") or {}).values())
    return LevelMetrics.from_genai_bench(
        {
            "scenario": scenario,
            "num_concurrency": concurrency,
            "num_requests": max(errors, 1),
            "num_error_requests": max(errors, 1),
        }
    )


def _minutes(seconds: int) -> int:
    return max(1, math.ceil(seconds / 60))


def _tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:]) or "(empty log)"
