"""``plan --plot``: each layout's cost against its latency, the SLO and the cheapest marked."""

from __future__ import annotations

from pathlib import Path

from tuner._png import png
from tuner.plan._result import PlanResult

__all__ = ["plot"]


def plot(path: Path, result: PlanResult) -> Path:
    """Writes a PNG of each estimated layout's USD per hour against its TTFT p99 (log scales):
    those that meet the SLO, those that miss it, the TTFT bound and the cheapest plan. (Per
    hour, not per token: a layout that cannot keep up with the load serves fewer tokens than
    its estimate's offered rate, so its cost per token would flatter it.)"""
    estimated = result.charted()
    bound = result.spec.slo.bounds().get("ttft_p99_ms")
    with png(path, size=(8, 5)) as ax:
        for meets, color, label in ((False, "#bbbbbb", "misses the SLO"),
                                    (True, "#2a9d5c", "meets the SLO")):
            group = [c for c in estimated if c.meets == meets]
            ax.scatter([c.metrics["ttft_p99_ms"] for c in group],
                       [c.usd_per_hour for c in group], s=14, color=color, label=label)
        if result.best is not None:
            best = result.best
            ax.scatter([best.metrics["ttft_p99_ms"]], [best.usd_per_hour], s=160, marker="*",
                       color="#d62728", label=f"cheapest: {best.gpus} x {best.gpu} {best.layout}")
        if bound is not None:
            ax.axvline(bound, color="#d62728", linestyle="--", linewidth=1,
                       label=f"TTFT p99 bound {bound:,.0f} ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("predicted TTFT p99 (ms)")
        ax.set_ylabel("USD per hour")
        ax.legend(fontsize=8)
    return path
