"""The server's view of a level: /metrics deltas, exact means, bucket percentiles, the flags."""

from __future__ import annotations

import prometheus_client
import pytest

from tuner.bench._prometheus import parse, server_view
from tuner.bench.metrics import Histogram, LevelMetrics, ServerView

# SGLang 0.5.5's TTFT buckets (sglang/srt/metrics/collector.py): coarse below 0.4 s.
SGLANG_TTFT = (0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400)


class Server:
    """A registry shaped like SGLang's: the tokenizer's request metrics (``model_name`` only)
    and one scheduler per tensor-parallel rank, each observing every request's queue time."""

    def __init__(self, tp: int = 2) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.tp = tp
        self.ttft = prometheus_client.Histogram(
            "sglang:time_to_first_token_seconds", "", ("model_name",), buckets=SGLANG_TTFT,
            registry=self.registry)
        self.e2e = prometheus_client.Histogram(
            "sglang:e2e_request_latency_seconds", "", ("model_name",), buckets=SGLANG_TTFT,
            registry=self.registry)
        self.generation = prometheus_client.Counter(
            "sglang:generation_tokens", "", ("model_name",), registry=self.registry)
        self.prompt = prometheus_client.Counter(
            "sglang:prompt_tokens", "", ("model_name",), registry=self.registry)
        self.queue = prometheus_client.Histogram(
            "sglang:queue_time_seconds", "", ("model_name", "tp_rank", "dp_rank"),
            buckets=SGLANG_TTFT, registry=self.registry)

    def finish(self, ttft: float, e2e: float, tokens: int, queue: float = 0.0,
               dp_rank: str = "0") -> None:
        self.ttft.labels("m").observe(ttft)
        self.e2e.labels("m").observe(e2e)
        self.generation.labels("m").inc(tokens)
        self.prompt.labels("m").inc(100)
        for rank in range(self.tp):
            self.queue.labels("m", str(rank), dp_rank).observe(queue)

    def text(self) -> str:
        return prometheus_client.generate_latest(self.registry).decode()


def test_a_level_is_the_delta_with_exact_means_read_once_per_tensor_parallel_group() -> None:
    server = Server(tp=2)
    server.finish(ttft=5.0, e2e=9.0, tokens=7)  # before the level: not counted
    before = parse(server.text())
    server.finish(ttft=0.010, e2e=1.0, tokens=100, queue=0.002, dp_rank="0")
    server.finish(ttft=0.030, e2e=3.0, tokens=300, queue=0.004, dp_rank="1")
    view = server_view(before, parse(server.text()), wall_s=10.0)
    assert view is not None
    assert view.requests == 2 and view.generation_tokens == 400 and view.prompt_tokens == 200
    assert view.ttft is not None and view.ttft.mean_ms == pytest.approx(20.0)
    # Both tensor-parallel ranks saw both requests; data-parallel ranks saw one each.
    assert view.queue is not None and view.queue.count == 2
    assert view.queue.mean_ms == pytest.approx(3.0)
    assert view.itl is None  # not exported: absent, not zero
    assert view.behind_fraction is None  # real SGLang says nothing of its host


def test_no_request_metrics_means_no_view() -> None:
    assert server_view({}, parse("# TYPE other counter\nother_total 3\n"), wall_s=1.0) is None


def test_coarse_buckets_give_a_range_fine_ones_a_value() -> None:
    coarse = Histogram(bounds=[0.1, 0.2], counts=[100, 100], count=100, sum=1.5)
    p99 = coarse.quantile(0.99)
    assert p99 is not None and p99.value_ms is None and (p99.low_ms, p99.high_ms) == (0, 100)
    assert p99.text() == "0-100"
    assert p99.estimate(250.0) == 100.0 and p99.estimate(40.0) == 40.0
    fine = Histogram(bounds=[0.04, 0.05, 0.06], counts=[0, 50, 100], count=100, sum=5.0)
    p90 = fine.quantile(0.9)
    assert p90 is not None and p90.value_ms == pytest.approx(58.0)


def level(*, ttft_mean: float, ttft_p99: float, output: float,
          concurrency: int = 10) -> LevelMetrics:
    return LevelMetrics.from_genai_bench({
        "scenario": "D(100,100)", "num_concurrency": concurrency, "num_requests": 100,
        "num_completed_requests": 100, "mean_output_throughput_tokens_per_s": output,
        "run_duration": 10.0,
        "stats": {"ttft": {"mean": ttft_mean, "p99": ttft_p99}, "e2e_latency": {"mean": 1.0}},
    })


def view(*, ttft_mean: float, e2e_mean: float = 1.0, behind: float | None = None) -> ServerView:
    # 100 requests of 100 tokens; TTFTs all in SGLang's first bucket (0-100 ms).
    return ServerView(
        requests=100, prompt_tokens=10_000, generation_tokens=10_000,
        ttft=Histogram(bounds=list(SGLANG_TTFT[:2]), counts=[100, 100], count=100,
                       sum=ttft_mean * 100),
        e2e=Histogram(bounds=[0.8, 1.0, 1.2], counts=[0, 50, 100], count=100,
                      sum=e2e_mean * 100),
        behind_fraction=behind)


def test_client_ttft_far_above_the_servers_flags_the_level_with_both_figures() -> None:
    starved = level(ttft_mean=0.120, ttft_p99=0.400, output=1000).with_server(
        view(ttft_mean=0.020))
    assert starved.client_bound is not None
    assert "ttft_mean_ms 120.0 (client) vs 20.0 (server)" in starved.client_bound
    assert "ttft_p99_ms 400.0 (client) vs 0-100 (server)" in starved.client_bound
    fine = level(ttft_mean=0.024, ttft_p99=0.060, output=1000).with_server(
        view(ttft_mean=0.020))
    assert fine.client_bound is None and fine.flags() == {}


def test_client_throughput_below_littles_law_flags_the_level() -> None:
    # 10 users, 1 s per request, 100 tokens each: a client that keeps up sees 1000 tokens/s.
    keeps_up = level(ttft_mean=0.02, ttft_p99=0.05, output=950).with_server(
        view(ttft_mean=0.02))
    assert keeps_up.client_bound is None
    assert keeps_up.as_server_sees().output_throughput == pytest.approx(1000.0)
    lagging = level(ttft_mean=0.02, ttft_p99=0.05, output=600).with_server(
        view(ttft_mean=0.02))
    assert lagging.client_bound == "output_throughput 600.0 (client) vs 1000.0 (server)"


def test_a_twin_behind_its_clock_flags_the_host() -> None:
    base = level(ttft_mean=0.02, ttft_p99=0.05, output=1000)
    assert base.with_server(view(ttft_mean=0.02, behind=0.05)).host_overloaded is None
    slow = base.with_server(view(ttft_mean=0.02, behind=0.25))
    assert slow.host_overloaded is not None and "25%" in slow.host_overloaded
    before = {"twin:clock_behind_seconds_total": 1.0,
              "sglang:e2e_request_latency_seconds_count": 0.0,
              "sglang:e2e_request_latency_seconds_sum": 0.0}
    after = {**before, "twin:clock_behind_seconds_total": 3.0}
    measured = server_view(before, after, wall_s=8.0)
    assert measured is not None and measured.behind_fraction == pytest.approx(0.25)
