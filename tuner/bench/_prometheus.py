"""A server's Prometheus ``/metrics``, read before and after a level into a :class:`ServerView`.

Names are SGLang's (``sglang:*``, which the twin copies). SGLang's scheduler runs once per
tensor-parallel rank and each rank observes the same requests (``queue_time_seconds`` among
them), so only ``tp_rank="0"`` is read; the other series are summed over their label sets
(``model_name``, ``engine_type``, ``dp_rank``...), since data-parallel ranks serve different
requests. The twin adds ``twin:clock_behind_seconds_total``; real SGLang
has no such series, and the view then says nothing about host health.
"""

from __future__ import annotations

import logging

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tuner.bench.metrics import Histogram, ServerView

__all__ = ["Snapshot", "scrape", "server_view"]

logger = logging.getLogger(__name__)

# Sample name (with ``|le`` for a bucket) -> value summed over label sets.
Snapshot = dict[str, float]

_HISTOGRAMS = {
    "ttft": "sglang:time_to_first_token_seconds",
    "itl": "sglang:inter_token_latency_seconds",
    "e2e": "sglang:e2e_request_latency_seconds",
    "queue": "sglang:queue_time_seconds",
}
_PROMPT = "sglang:prompt_tokens_total"
_GENERATION = "sglang:generation_tokens_total"
_BEHIND = "twin:clock_behind_seconds_total"
# A scrape is a few kB; a server too busy to answer in this long is itself a finding.
_TIMEOUT_S = 5.0


def scrape(endpoint: str) -> Snapshot | None:
    """The server's metrics now; None when it serves none (no ``--enable-metrics``) or
    does not answer, so the level is measured without a server view."""
    try:
        response = httpx.get(f"{endpoint}/metrics", timeout=_TIMEOUT_S)
    except httpx.HTTPError as e:
        logger.info("no /metrics at %s (%s): no server-side cross-check", endpoint, e)
        return None
    if response.status_code != 200:
        logger.info("%s/metrics answered %s: no server-side cross-check", endpoint,
                    response.status_code)
        return None
    return parse(response.text)


def parse(text: str) -> Snapshot:
    """Sum every sample of the exposition ``text`` over its label sets (buckets by ``le``),
    reading tensor-parallel rank 0 only."""
    snapshot: Snapshot = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("tp_rank", "0") != "0":
                continue
            key = sample.name
            if key.endswith("_bucket"):
                key = f"{key}|{sample.labels.get('le', '+Inf')}"
            snapshot[key] = snapshot.get(key, 0.0) + sample.value
    return snapshot


def server_view(before: Snapshot, after: Snapshot, *, wall_s: float) -> ServerView | None:
    """What changed between two scrapes; None when the server exports none of SGLang's
    request metrics.

    Args:
        wall_s: the level's wall-clock duration, which host health is a share of.
    """
    histograms = {short: _histogram(name, before, after) for short, name in _HISTOGRAMS.items()}
    e2e = histograms["e2e"]
    if e2e is None:
        return None
    behind = _delta(_BEHIND, before, after)
    return ServerView(
        requests=e2e.count,
        prompt_tokens=_delta(_PROMPT, before, after) or 0.0,
        generation_tokens=_delta(_GENERATION, before, after) or 0.0,
        behind_fraction=None if behind is None or wall_s <= 0 else behind / wall_s,
        **histograms,
    )


def _delta(key: str, before: Snapshot, after: Snapshot) -> float | None:
    if key not in after:
        return None
    return after[key] - before.get(key, 0.0)


def _histogram(name: str, before: Snapshot, after: Snapshot) -> Histogram | None:
    count = _delta(f"{name}_count", before, after)
    total = _delta(f"{name}_sum", before, after)
    if count is None or total is None:
        return None
    prefix = f"{name}_bucket|"
    buckets = sorted(
        (float(key[len(prefix):]), after[key] - before.get(key, 0.0))
        for key in after
        if key.startswith(prefix) and not key.endswith("+Inf")
    )
    return Histogram(bounds=[b for b, _ in buckets], counts=[c for _, c in buckets],
                     count=count, sum=total)
