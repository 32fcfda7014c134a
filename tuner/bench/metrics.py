"""``LevelMetrics``: what one concurrency level of one trial measured, in real-time units,
with the server's own account of the same level beside genai-bench's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "LATENCY_METRICS",
    "Histogram",
    "LevelMetrics",
    "Quantile",
    "ServerView",
    "THROUGHPUT_METRICS",
]

_STATS = {"ttft": "ttft", "tpot": "tpot", "e2e": "e2e_latency"}
_PCTS = ("mean", "p50", "p90", "p95", "p99")
LATENCY_METRICS = tuple(f"{m}_{p}_ms" for m in _STATS for p in _PCTS)
THROUGHPUT_METRICS = (
    "output_throughput",
    "input_throughput",
    "total_throughput",
    "requests_per_second",
)
# A bucket resolves a percentile when its upper bound is at most this multiple of its lower
# one: linear interpolation inside it is then off by less than ~20 %. SGLang's TTFT buckets
# (0.1, 0.2, 0.4 s...) are coarser than that below 0.4 s.
_RESOLVED_RATIO = 1.5
# Client and server disagree when the client's latency exceeds the server's, or the server's
# throughput exceeds the client's, by more than this share.
CLIENT_TOLERANCE = 0.3
# A twin whose loop ran behind its virtual clock for more than this share of a level's wall
# time was not simulating faithfully.
BEHIND_TOLERANCE = 0.1


@dataclass(frozen=True)
class Quantile:
    """A percentile read from histogram buckets: the bucket it lies in, in ms, and the
    interpolated value when the bucket is fine enough (``value_ms`` None otherwise)."""

    low_ms: float
    high_ms: float | None  # None: beyond the last finite bucket
    value_ms: float | None

    def text(self) -> str:
        """``42.1`` when resolved, else the bucket, e.g. ``0-100``."""
        if self.value_ms is not None:
            return f"{self.value_ms:.1f}"
        return f"{self.low_ms:g}-{self.high_ms:g}" if self.high_ms else f">{self.low_ms:g}"

    def estimate(self, client_ms: float) -> float:
        """The value, or the client's figure moved into the bucket: the server's buckets say
        where the percentile lies, the client says where inside (its figure can only be high
        from client-side delays, or low from rounding)."""
        if self.value_ms is not None:
            return self.value_ms
        high = self.high_ms if self.high_ms is not None else math.inf
        return min(max(client_ms, self.low_ms), high)


class Histogram(BaseModel):
    """One Prometheus histogram's change over a level, summed over label sets, in seconds.

    Attributes:
        bounds: the finite bucket upper bounds (``le``), ascending.
        counts: cumulative observations at each bound.
        count: all observations (the ``+Inf`` bucket).
        sum: the sum of the observed values.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bounds: list[float]
    counts: list[float]
    count: float
    sum: float

    @property
    def mean_ms(self) -> float | None:
        """The exact mean, from ``sum`` and ``count``; None without observations."""
        return self.sum / self.count * 1000.0 if self.count > 0 else None

    def quantile(self, q: float) -> Quantile | None:
        """The ``q`` quantile (0-1) as a bucket, interpolated where the bucket allows."""
        if self.count <= 0:
            return None
        rank = q * self.count
        lower, below = 0.0, 0.0
        for bound, cumulative in zip(self.bounds, self.counts, strict=True):
            if cumulative >= rank and cumulative > below:
                value = None
                if lower > 0 and bound <= lower * _RESOLVED_RATIO:
                    value = lower + (bound - lower) * (rank - below) / (cumulative - below)
                return Quantile(lower * 1000.0, bound * 1000.0,
                                None if value is None else value * 1000.0)
            lower, below = bound, cumulative
        return Quantile(lower * 1000.0, None, None)


class ServerView(BaseModel):
    """What the server itself counted during one level: the change of its ``/metrics``.

    Latencies are the server's own (SGLang measures from the request's arrival at its
    tokenizer), in the units real SGLang would report: a twin's simulated seconds.

    Attributes:
        requests: requests that finished (the end-to-end histogram's count).
        prompt_tokens, generation_tokens: token counters.
        ttft, itl, e2e, queue: the latency histograms; None when the server has none
            (``queue``: SGLang's scheduler queue time, absent on the twin).
        behind_fraction: the share of the level's wall time the twin's event loop ran
            behind its virtual clock; None on servers that do not say (real SGLang).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests: float
    prompt_tokens: float
    generation_tokens: float
    ttft: Histogram | None = None
    itl: Histogram | None = None
    e2e: Histogram | None = None
    queue: Histogram | None = None
    behind_fraction: float | None = None

    def metrics(self, client: LevelMetrics) -> dict[str, float]:
        """The level metrics the server can vouch for, by :class:`LevelMetrics` field name.

        Throughputs follow from Little's law: ``concurrency`` closed-loop users that each
        wait for their answer get ``concurrency / mean e2e latency`` requests per second,
        which is what a client that keeps every user busy measures. Means are exact.
        Percentiles of TTFT and e2e latency come from the buckets (see
        :meth:`Quantile.estimate`); TPOT percentiles are not here, since the server's
        inter-token histogram counts single gaps, not per-request averages.
        """
        out: dict[str, float] = {}
        e2e_mean = self.e2e.mean_ms if self.e2e is not None else None
        if e2e_mean and self.requests > 0:
            rps = client.concurrency / (e2e_mean / 1000.0)
            out["requests_per_second"] = rps
            out["output_throughput"] = rps * self.generation_tokens / self.requests
            out["input_throughput"] = rps * self.prompt_tokens / self.requests
            out["total_throughput"] = out["output_throughput"] + out["input_throughput"]
        for short, histogram in (("ttft", self.ttft), ("tpot", self.itl), ("e2e", self.e2e)):
            if histogram is None or (mean := histogram.mean_ms) is None:
                continue
            out[f"{short}_mean_ms"] = mean
            if short == "tpot":
                continue
            for pct in _PCTS[1:]:
                name, quantile = f"{short}_{pct}_ms", histogram.quantile(int(pct[1:]) / 100)
                if quantile is not None:
                    out[name] = quantile.estimate(getattr(client, name))
        return out


class LevelMetrics(BaseModel):
    """One level's aggregate: throughputs per second, latencies in milliseconds.

    Throughputs are server-wide (tokens or requests per second over the level); latency
    percentiles cover successful requests only, as genai-bench computes them.

    Attributes:
        server: the server's own view of the level (None when it serves no ``/metrics``,
            or for estimates).
        client_bound: why genai-bench's figures are not the server's (its latency well
            above the server's, or its throughput well below), with both figures; None when
            they agree or there is no server view.
        host_overloaded: why the twin's simulation was not faithful during the level (its
            loop ran behind its clock); None when it kept up or cannot tell.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenario: str
    concurrency: int
    num_requests: int
    num_completed: int
    num_errors: int
    error_rate: float
    duration_s: float
    output_throughput: float
    input_throughput: float
    total_throughput: float
    requests_per_second: float
    ttft_mean_ms: float
    ttft_p50_ms: float
    ttft_p90_ms: float
    ttft_p95_ms: float
    ttft_p99_ms: float
    tpot_mean_ms: float
    tpot_p50_ms: float
    tpot_p90_ms: float
    tpot_p95_ms: float
    tpot_p99_ms: float
    e2e_mean_ms: float
    e2e_p50_ms: float
    e2e_p90_ms: float
    e2e_p95_ms: float
    e2e_p99_ms: float
    server: ServerView | None = None
    client_bound: str | None = None
    host_overloaded: str | None = None

    @classmethod
    def from_genai_bench(
        cls, aggregated: dict[str, Any], *, time_unit: str = "s", time_scale: float = 1.0
    ) -> LevelMetrics:
        """Read genai-bench's ``aggregated_metrics`` (or the twin estimator's, same shape).

        ``time_scale`` undoes a twin's ``--time-scale``: latencies are multiplied by it and
        throughputs divided. The error rate is computed from the counts, because
        genai-bench's own ``error_rate`` field is always 0.
        """
        to_ms = (1000.0 if time_unit == "s" else 1.0) * time_scale
        stats = aggregated.get("stats") or {}
        values: dict[str, Any] = {}
        for short, key in _STATS.items():
            stat = stats.get(key) or {}
            for pct in _PCTS:
                value = stat.get(pct)
                values[f"{short}_{pct}_ms"] = float(value) * to_ms if value is not None else 0.0
        requests = int(aggregated.get("num_requests") or 0)
        errors = int(aggregated.get("num_error_requests") or 0)
        return cls(
            scenario=str(aggregated["scenario"]),
            concurrency=int(aggregated.get("num_concurrency") or 0),
            num_requests=requests,
            num_completed=int(aggregated.get("num_completed_requests") or 0),
            num_errors=errors,
            error_rate=errors / requests if requests else 1.0,
            duration_s=float(aggregated.get("run_duration") or 0.0) * time_scale,
            output_throughput=_rate(aggregated, "mean_output_throughput_tokens_per_s", time_scale),
            input_throughput=_rate(aggregated, "mean_input_throughput_tokens_per_s", time_scale),
            total_throughput=_rate(
                aggregated, "mean_total_tokens_throughput_tokens_per_s", time_scale
            ),
            requests_per_second=_rate(aggregated, "requests_per_second", time_scale),
            **values,
        )

    def with_server(self, server: ServerView) -> LevelMetrics:
        """This level with the server's view attached and the two cross-checked."""
        level = self.model_copy(update={"server": server})
        return level.model_copy(
            update={"client_bound": level._disagreement(), "host_overloaded": level._lag()}
        )

    def as_server_sees(self) -> LevelMetrics:
        """This level with the metrics the server vouches for in place of genai-bench's
        (itself when there is no server view)."""
        if self.server is None:
            return self
        return self.model_copy(update=self.server.metrics(self))

    def flags(self) -> dict[str, str]:
        """The flags this level raised (``client_bound``, ``host_overloaded``) with why."""
        found = {"client_bound": self.client_bound, "host_overloaded": self.host_overloaded}
        return {name: text for name, text in found.items() if text}

    def _disagreement(self) -> str | None:
        assert self.server is not None
        server = self.server.metrics(self)
        found = []
        for name in ("ttft_mean_ms", "ttft_p99_ms"):
            vouched = server.get(name)
            mine = getattr(self, name)
            if vouched is not None and mine > vouched * (1 + CLIENT_TOLERANCE):
                found.append(f"{name} {mine:.1f} (client) vs {_server_text(self.server, name)}"
                             " (server)")
        vouched = server.get("output_throughput")
        if vouched is not None and self.output_throughput * (1 + CLIENT_TOLERANCE) < vouched:
            found.append(f"output_throughput {self.output_throughput:.1f} (client) vs "
                         f"{vouched:.1f} (server)")
        return "; ".join(found) or None

    def _lag(self) -> str | None:
        assert self.server is not None
        behind = self.server.behind_fraction
        if behind is None or behind <= BEHIND_TOLERANCE:
            return None
        return (f"the twin ran behind its clock for {behind:.0%} of the level; its timings "
                "are not faithful: use a lower time_scale or a less loaded host")


def _server_text(server: ServerView, name: str) -> str:
    """A server-side TTFT figure as it is known: exact mean, or the p99's bucket."""
    assert server.ttft is not None
    if name == "ttft_mean_ms":
        return f"{server.ttft.mean_ms:.1f}"
    quantile = server.ttft.quantile(0.99)
    assert quantile is not None
    return quantile.text()


def _rate(aggregated: dict[str, Any], key: str, time_scale: float) -> float:
    return float(aggregated.get(key) or 0.0) / time_scale
