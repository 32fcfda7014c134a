"""Helpers of the twin tests: start a twin process and load it with a lean HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import numpy as np

from twin import _stats


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(args: Sequence[str]) -> subprocess.Popen[bytes]:
    """Starts ``python -m twin.launch_server`` with ``args``, stderr captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "twin.launch_server", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Polls ``/health`` until it answers 200; fails if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise AssertionError(f"twin exited {proc.returncode}: {proc.stderr.read().decode()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=5.0).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError("twin did not become ready")


def metric_samples(url: str) -> list[tuple[str, dict[str, str], float]]:
    """``(name, labels, value)`` of every sample the server's ``/metrics`` serves."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics").text
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def stop(proc: subprocess.Popen[bytes]) -> str:
    """Terminates a twin process and returns its stderr."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    return proc.stderr.read().decode()


@contextlib.contextmanager
def running_twin(*args: str) -> Iterator[str]:
    """Runs a twin on a free port with instant start-up; yields its base URL."""
    port = free_port()
    proc = launch(["--port", str(port), "--startup-time-scale", "1000", *args])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield url
    finally:
        stop(proc)


class _Connection:
    """One keep-alive HTTP/1.1 connection that streams completions.

    Raw HTTP and no per-event parsing, so the client adds as little time as possible to what
    it measures (the server's time scale multiplies any client overhead); keep-alive keeps
    TCP connection set-up, which the server cannot observe, out of the measurement.
    """

    def __init__(self, port: int) -> None:
        self._port = port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def stream(self, body: bytes) -> tuple[float, float, int, int]:
        if self._streams is None:
            sock = socket.socket()
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self._port))
            self._streams = await asyncio.open_connection(sock=sock)
        reader, writer = self._streams
        start = time.monotonic()
        writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: twin\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        first = end = 0.0
        tail = b""
        while not tail.endswith(b"\r\n0\r\n\r\n"):
            data = await reader.read(1 << 16)
            assert data, "connection closed mid-response"
            if not first:
                first = time.monotonic()
            tail = (tail + data)[-2048:]
            if not end and b"data: [DONE]" in tail:
                end = time.monotonic()
        usage = json.loads(tail[tail.rindex(b'"usage": ') + 9 :].split(b"}", 1)[0] + b"}")
        return first - start, end - start, usage["prompt_tokens"], usage["completion_tokens"]

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


_PROMPTS = itertools.count()


def closed_loop(
    url: str,
    *,
    concurrency: int,
    requests: int,
    input_len: int,
    output_len: int,
    time_scale: float = 1.0,
) -> dict[str, object]:
    """genai-bench-like closed loop; genai-bench-shaped metrics.

    As genai-bench's locust does at its default spawn rate, every user starts at once; as
    its sampled prompts are, every prompt is distinct (no prefix-cache hits). Latencies are
    multiplied and throughputs divided by ``time_scale``.
    """
    port = int(url.rsplit(":", 1)[1])

    def body() -> bytes:
        first = next(_PROMPTS) * 4099  # a different first token per request, run after run
        prompt = [10 + (first + j) % 30_000 for j in range(input_len)]
        return json.dumps(
            {
                "model": "twin",
                "prompt": prompt,
                "max_tokens": output_len,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()

    results: list[tuple[float, float, int, int]] = []
    finished = asyncio.Event()
    end = [0.0]

    async def client() -> None:
        connection = _Connection(port)
        try:
            while True:
                result = await connection.stream(body())
                if len(results) < requests:
                    results.append(result)
                    if len(results) == requests:
                        end[0] = time.monotonic()
                        finished.set()
        finally:
            connection.close()

    async def main() -> float:
        # As genai-bench does, stop when enough requests completed; drop the ones in flight.
        origin = time.monotonic()
        tasks = [asyncio.ensure_future(client()) for _ in range(concurrency)]
        await finished.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return end[0] - origin

    duration = asyncio.run(main()) * time_scale
    data = np.asarray(results[:requests], dtype=float)
    return _stats.aggregate(
        scenario=f"D({input_len},{output_len})",
        concurrency=concurrency,
        duration=duration,
        ttft=data[:, 0] * time_scale,
        e2e=data[:, 1] * time_scale,
        num_input=data[:, 2],
        num_output=data[:, 3],
        error_codes={},
    )


# The quickstart's workload, measured by the time-scale test and by benchmarks/twin_speed.py.
QUICKSTART_MODEL = "Llama-3.1-8B-Instruct"
QUICKSTART_LEVELS = (4, 16)
QUICKSTART_SCENARIO = "D(256,128)"
QUICKSTART_REQUESTS = 40


def summary(metrics: dict[str, Any]) -> dict[str, float]:
    """Output throughput, mean TTFT and mean TPOT of genai-bench-shaped metrics."""
    stats = metrics["stats"]
    return {
        "throughput": float(metrics["mean_output_throughput_tokens_per_s"]),
        "ttft": float(stats["ttft"]["mean"]),
        "tpot": float(stats["tpot"]["mean"]),
    }


def measure_quickstart(time_scale: float) -> dict[int, dict[str, float]]:
    """The quickstart workload against a twin server at ``time_scale``, per concurrency."""
    with running_twin(
        "--model-path",
        QUICKSTART_MODEL,
        "--time-scale",
        str(time_scale),
        "--log-level",
        "warning",
    ) as url:
        return {
            c: summary(
                closed_loop(
                    url,
                    concurrency=c,
                    requests=QUICKSTART_REQUESTS,
                    input_len=256,
                    output_len=128,
                    time_scale=time_scale,
                )
            )
            for c in QUICKSTART_LEVELS
        }


def estimate_quickstart() -> dict[int, dict[str, float]]:
    """The twin estimator's prediction of the quickstart workload, per concurrency."""
    import twin

    return {
        c: summary(
            twin.estimate(
                {"model_path": QUICKSTART_MODEL},
                scenario=QUICKSTART_SCENARIO,
                concurrency=c,
                max_requests=QUICKSTART_REQUESTS,
            )["aggregated_metrics"]
        )
        for c in QUICKSTART_LEVELS
    }
