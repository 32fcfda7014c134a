"""The warm-up wave against a real twin: it reaches the scheduler, and failures are counted."""

from __future__ import annotations

import socket

import httpx
import numpy as np
import pytest

from tuner.bench import warmup

from .test_genai import start_twin

pytestmark = pytest.mark.slow


def _prompt_tokens(endpoint: str) -> float:
    text = httpx.get(f"{endpoint}/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("sglang:prompt_tokens_total"))
    return float(line.rsplit(" ", 1)[1])


def test_a_wave_of_prompts_reaches_the_server_and_a_failing_one_is_counted() -> None:
    process, deployment = start_twin("--enable-metrics", "--fault", "http500-rate=1.0")
    try:
        done = warmup.send(deployment.endpoint, [300, 300, 50], timeout_s=60)
        assert (done.sent, done.failed, done.unanswered, done.error) == (3, 3, 0, "HTTP 500")
    finally:
        process.kill()
        process.wait()
    process, deployment = start_twin("--enable-metrics")
    try:
        before = _prompt_tokens(deployment.endpoint)
        done = warmup.send(deployment.endpoint, [300, 300, 50], timeout_s=60)
        assert (done.sent, done.failed, done.unanswered, done.error) == (3, 0, 0, None)
        # All three prefilled, none from another's cached prefix.
        assert _prompt_tokens(deployment.endpoint) - before == 650
    finally:
        process.kill()
        process.wait()


def test_a_server_that_is_gone_is_a_count_not_an_exception() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = warmup.send(f"http://127.0.0.1:{port}", [10, 10], timeout_s=10)
    assert done.sent == done.failed == done.unanswered == 2
    assert "ConnectError" in (done.error or "")


def test_lengths_follow_the_rung_scenarios_round_robin() -> None:
    lengths = warmup.prompt_lengths(["D(100,8)", "D(700,8)"], 5)
    assert lengths == [100, 700, 100, 700, 100]
    drawn = warmup.prompt_lengths(["dataset"], 50, dataset=np.array([3, 9]))
    assert set(drawn) == {3, 9}
    spread = warmup.prompt_lengths(["N(500,100)/(10,1)"], 200, seed=1)
    assert 450 < float(np.mean(spread)) < 550 and min(spread) >= 1
