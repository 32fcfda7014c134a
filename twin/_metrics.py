"""Prometheus metrics with SGLang 0.5.5's names, labels and buckets (``--enable-metrics``).

SGLang has two collectors (``sglang/srt/metrics/collector.py``): the tokenizer's, labelled by
``model_name`` only (token counters; TTFT, inter-token and end-to-end latency), and one per
scheduler process, labelled ``model_name``, ``engine_type``, ``tp_rank``, ``pp_rank`` and, with
several DP ranks, ``dp_rank`` (gauges; queue time). Gauges come from TP rank 0 only; every TP
rank observes the queue time, as SGLang's schedulers do. The twin adds its host-health metrics
(``twin:*``): one series per process (its one event loop runs every replica), labelled like
the scheduler metrics of a single-DP server.

Times are simulated seconds, i.e. what a real SGLang server would report, whatever the
``--time-scale``; the ``twin:*`` metrics are wall seconds.
"""

from __future__ import annotations

from typing import cast

import prometheus_client

# TokenizerMetricsCollector's default buckets (no --bucket-* flags), seconds.
TTFT_BUCKETS = (0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400)
E2E_BUCKETS = (
    *(0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400),
    *(600, 1200, 1800, 2400),
)
ITL_BUCKETS = (
    *(0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040),
    *(0.060, 0.080, 0.100, 0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000),
)
# SchedulerMetricsCollector's queue_time_seconds buckets, seconds.
QUEUE_BUCKETS = (
    *(0.0, 0.1, 0.2, 0.5, 1, 2, 3, 4, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100),
    *(200, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1600, 1800, 2000, 2500, 3000),
)

TOKENIZER_LABELS = ("model_name",)
SCHEDULER_LABELS = ("model_name", "engine_type", "tp_rank", "pp_rank")


class SchedulerMetrics:
    """The metrics of one DP rank's schedulers (TP rank 0 for gauges).

    Attributes:
        queue_time: One histogram child per TP rank.
    """

    def __init__(
        self,
        family: dict[str, prometheus_client.metrics.MetricWrapperBase],
        labels: dict[str, str],
        tp: int,
    ) -> None:
        def child(name: str) -> prometheus_client.Gauge:
            return cast(prometheus_client.Gauge, family[name].labels(**labels))

        self.num_running_reqs = child("num_running_reqs")
        self.num_queue_reqs = child("num_queue_reqs")
        self.num_used_tokens = child("num_used_tokens")
        self.token_usage = child("token_usage")
        self.gen_throughput = child("gen_throughput")
        self.cache_hit_rate = child("cache_hit_rate")
        self.num_retracted_reqs = child("num_retracted_reqs")
        self.is_cuda_graph = child("is_cuda_graph")
        self.queue_time = [
            cast(
                prometheus_client.Histogram,
                family["queue_time"].labels(**{**labels, "tp_rank": str(r)}),
            )
            for r in range(tp)
        ]


class ServerMetrics:
    """SGLang's tokenizer and scheduler metrics, in a private registry.

    Args:
        model_name: Value of the ``model_name`` label (the served model name).
        tp: TP ranks per DP rank.
        dp: DP ranks (a ``dp_rank`` label is added when above 1).

    Attributes:
        schedulers: One per DP rank.
    """

    def __init__(self, model_name: str, *, tp: int = 1, dp: int = 1) -> None:
        # SGLang's multiprocess collector exports no *_created samples.
        prometheus_client.disable_created_metrics()
        self.registry = prometheus_client.CollectorRegistry()
        registry = self.registry

        def counter(name: str, doc: str) -> prometheus_client.Counter:
            return prometheus_client.Counter(
                name, doc, TOKENIZER_LABELS, registry=registry
            ).labels(model_name)

        def histogram(
            name: str, doc: str, buckets: tuple[float, ...]
        ) -> prometheus_client.Histogram:
            metric = prometheus_client.Histogram(
                name, doc, TOKENIZER_LABELS, registry=registry, buckets=buckets
            )
            return metric.labels(model_name)

        self.prompt_tokens = counter(
            "sglang:prompt_tokens_total", "Number of prefill tokens processed."
        )
        self.generation_tokens = counter(
            "sglang:generation_tokens_total", "Number of generation tokens processed."
        )
        self.cached_tokens = counter(
            "sglang:cached_tokens_total", "Number of cached prompt tokens."
        )
        self.num_requests = counter("sglang:num_requests_total", "Number of requests processed.")
        self.num_aborted_requests = counter(
            "sglang:num_aborted_requests_total", "Number of requests aborted."
        )
        self.ttft = histogram(
            "sglang:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            TTFT_BUCKETS,
        )
        self.itl = histogram(
            "sglang:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            ITL_BUCKETS,
        )
        self.e2e = histogram(
            "sglang:e2e_request_latency_seconds",
            "Histogram of End-to-end request latency in seconds",
            E2E_BUCKETS,
        )
        names = SCHEDULER_LABELS + (("dp_rank",) if dp > 1 else ())
        gauges = {
            "num_running_reqs": "The number of running requests.",
            "num_queue_reqs": "The number of requests in the waiting queue.",
            "num_used_tokens": "The number of used tokens.",
            "token_usage": "The token usage.",
            "gen_throughput": "The generation throughput (token/s).",
            "cache_hit_rate": "The prefix cache hit rate.",
            "num_retracted_reqs": "The number of retracted requests.",
            "is_cuda_graph": "Whether the batch is using CUDA graph.",
        }
        family: dict[str, prometheus_client.metrics.MetricWrapperBase] = {
            key: prometheus_client.Gauge(f"sglang:{key}", doc, names, registry=registry)
            for key, doc in gauges.items()
        }
        family["queue_time"] = prometheus_client.Histogram(
            "sglang:queue_time_seconds",
            "Histogram of queueing time in seconds.",
            names,
            registry=registry,
            buckets=QUEUE_BUCKETS,
        )
        self.clock_lag = prometheus_client.Gauge(
            "twin:clock_lag_seconds",
            "Wall seconds the twin's scheduler loop is behind its virtual clock now.",
            SCHEDULER_LABELS,
            registry=registry,
        ).labels(model_name, "unified", "0", "0")
        self.clock_behind = prometheus_client.Counter(
            "twin:clock_behind_seconds_total",
            "Wall seconds the twin's scheduler loop spent behind its virtual clock by more "
            "than the tolerance (twin._facts clock_lag_tolerance_s).",
            SCHEDULER_LABELS,
            registry=registry,
        ).labels(model_name, "unified", "0", "0")
        self.schedulers = []
        for rank in range(dp):
            labels = {"model_name": model_name, "engine_type": "unified", "tp_rank": "0"}
            labels["pp_rank"] = "0"
            if dp > 1:
                labels["dp_rank"] = str(rank)
            self.schedulers.append(SchedulerMetrics(family, labels, tp))

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        return prometheus_client.generate_latest(self.registry)
