"""Prometheus metrics with SGLang's names (``--enable-metrics``), in a private registry.

Times are simulated seconds, i.e. what a real SGLang server would report, whatever the
``--time-scale``.
"""

from __future__ import annotations

import prometheus_client

_TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    25.0,
    30.0,
)
_ITL_BUCKETS = (
    0.002,
    0.004,
    0.006,
    0.008,
    0.01,
    0.015,
    0.02,
    0.025,
    0.03,
    0.035,
    0.04,
    0.06,
    0.08,
    0.1,
    0.2,
    0.4,
    0.6,
    0.8,
    1.0,
    2.0,
    4.0,
    6.0,
    8.0,
)
_E2E_BUCKETS = (
    0.1,
    0.2,
    0.4,
    0.6,
    0.8,
    1.0,
    2.0,
    4.0,
    6.0,
    8.0,
    10.0,
    20.0,
    40.0,
    60.0,
    80.0,
    100.0,
    150.0,
    200.0,
    250.0,
    300.0,
    350.0,
    500.0,
    1000.0,
)


class ServerMetrics:
    """The gauges, counters and histograms of SGLang 0.5.5's collector, labelled by model.

    Args:
        model_name: Value of the ``model_name`` label (the served model name).
    """

    def __init__(self, model_name: str) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        labels = ("model_name",)

        def gauge(name: str, doc: str) -> prometheus_client.Gauge:
            metric = prometheus_client.Gauge(name, doc, labels, registry=self.registry)
            return metric.labels(model_name)

        def counter(name: str, doc: str) -> prometheus_client.Counter:
            metric = prometheus_client.Counter(name, doc, labels, registry=self.registry)
            return metric.labels(model_name)

        def histogram(
            name: str, doc: str, buckets: tuple[float, ...]
        ) -> prometheus_client.Histogram:
            metric = prometheus_client.Histogram(
                name, doc, labels, buckets=buckets, registry=self.registry
            )
            return metric.labels(model_name)

        self.num_running_reqs = gauge("sglang:num_running_reqs", "The number of running requests.")
        self.num_queue_reqs = gauge(
            "sglang:num_queue_reqs", "The number of requests in the waiting queue."
        )
        self.token_usage = gauge("sglang:token_usage", "The token usage.")
        self.num_used_tokens = gauge("sglang:num_used_tokens", "The number of used tokens.")
        self.gen_throughput = gauge(
            "sglang:gen_throughput", "The generation throughput (token/s)."
        )
        self.cache_hit_rate = gauge("sglang:cache_hit_rate", "The prefix cache hit rate.")
        self.num_retracted_reqs = gauge(
            "sglang:num_retracted_reqs", "The number of retracted requests."
        )
        self.prompt_tokens = counter("sglang:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter(
            "sglang:generation_tokens", "Number of generation tokens processed."
        )
        self.num_requests = counter("sglang:num_requests", "Number of requests processed.")
        self.ttft = histogram(
            "sglang:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            _TTFT_BUCKETS,
        )
        self.itl = histogram(
            "sglang:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            _ITL_BUCKETS,
        )
        self.e2e = histogram(
            "sglang:e2e_request_latency_seconds",
            "Histogram of End-to-end request latency in seconds",
            _E2E_BUCKETS,
        )

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        return prometheus_client.generate_latest(self.registry)
