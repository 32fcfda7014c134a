"""Tests of twin._metrics served by a twin: host health (issue 12).

Names, labels and buckets against SGLang's source: test_sglang_source.py; as served:
test_server.py.
"""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from tests.twin import support
from twin import _engine
from twin._facts import fact

MODEL = "Llama-3.1-8B-Instruct"


def _behind(url: str) -> float:
    samples = support.metric_samples(url)
    return next(v for name, _, v in samples if name == "twin:clock_behind_seconds_total")


def test_clock_behind_counts_only_a_starved_loop() -> None:
    # At --time-scale 100000 a decode step lasts a few wall microseconds, far less than one
    # turn of the scheduler loop: the loop falls behind its virtual clock, as on a starved
    # host. Idle, it cannot be behind.
    with support.running_twin(
        "--model-path", MODEL, "--time-scale", "100000", "--enable-metrics",
        "--log-level", "warning",
    ) as url:
        idle = _behind(url)
        time.sleep(0.5)
        assert _behind(url) - idle < 0.005
        body = {"prompt": list(range(64)), "max_tokens": 6000, "ignore_eos": True}
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: httpx.post(f"{url}/v1/completions", json=body), range(4)))
        wall = time.monotonic() - start
        behind = _behind(url) - idle
        info = httpx.get(f"{url}/get_server_info").json()["twin_host"]
    # Behind for a good part of the wall time the load took (40-70 % measured on 2 cores; a
    # fast host turns the loop faster but is behind for the same share of it).
    assert 0.2 * wall < behind <= wall
    assert info["clock_behind_s_total"] == pytest.approx(behind + idle, abs=0.01)


def test_clock_watch_counts_wall_time_behind_once(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(_engine.time, "monotonic", lambda: now[0])
    watch = _engine.ClockWatch(2)
    tolerance = fact("clock_lag_tolerance_s")
    now[0] += 1.0
    assert watch.check(0, tolerance / 2) == 0.0  # on time
    now[0] += 1.0
    # Stalled: 0.3 s late means behind for about 0.3 s - tolerance, not the whole second.
    assert watch.check(0, 0.3) == pytest.approx(0.3 - tolerance)
    now[0] += 0.1
    # Both replicas late over the next 0.1 s: counted once.
    assert watch.check(1, 0.4) == pytest.approx(0.1)
    assert watch.lag == 0.4 and watch.behind_s == pytest.approx(0.4 - tolerance)
    watch.idle(0)
    watch.idle(1)
    now[0] += 5.0
    assert watch.lag == 0.0 and watch.check(0, 0.0) == 0.0
