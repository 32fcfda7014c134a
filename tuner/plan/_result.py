"""What a plan returns: every candidate layout with its estimate or why it was rejected."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tuner.plan._spec import PlanSpec
from tuner.prices import usd_per_mtok

__all__ = ["Candidate", "PlanResult"]


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One layout: ``replicas`` SGLang servers of ``tp`` GPUs of type ``gpu`` with ``flags``.

    ``meets`` tells whether its estimate met every SLO bound; ``reason`` says why not
    (``does not fit: ...``, ``misses ttft_p99_ms by ...``). ``metrics`` are the worst over the
    scenarios (latencies in ms; ``goodput`` in output tokens/s of the whole layout).
    """

    gpu: str
    tp: int
    replicas: int
    flags: dict[str, Any]
    usd_per_hour: float
    meets: bool
    reason: str | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    margin: float | None = None

    @property
    def gpus(self) -> int:
        """GPUs the layout occupies."""
        return self.tp * self.replicas

    @property
    def layout(self) -> str:
        """``tp4 x 2`` (tensor-parallel size x replicas)."""
        return f"tp{self.tp} x {self.replicas}"

    @property
    def usd_per_mtok(self) -> float | None:
        """USD per million output tokens at the predicted goodput."""
        goodput = self.metrics.get("goodput")
        if not goodput:
            return None
        return usd_per_mtok(self.usd_per_hour, goodput)

    @property
    def flags_text(self) -> str:
        """The flags set, as ``name=value`` words; ``defaults`` when none is."""
        return " ".join(f"{k}={v}" for k, v in self.flags.items() if v is not None) \
            or "defaults"

    @property
    def server_args(self) -> dict[str, Any]:
        """The flags of one replica, tp_size included (unset flags left out)."""
        return {"tp_size": self.tp, **{k: v for k, v in self.flags.items() if v is not None}}

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as ``--json`` prints it."""
        return {
            "gpu": self.gpu,
            "gpus": self.gpus,
            "tp_size": self.tp,
            "replicas": self.replicas,
            "layout": self.layout,
            "flags": dict(self.flags),
            "meets_slo": self.meets,
            "reason": self.reason,
            "metrics": dict(self.metrics),
            "slo_margin": self.margin,
            "usd_per_hour": round(self.usd_per_hour, 4),
            "usd_per_mtok": None if self.usd_per_mtok is None else round(self.usd_per_mtok, 4),
        }


@dataclasses.dataclass(frozen=True)
class PlanResult:
    """A finished plan: ``ranked`` (SLO met, cheapest first) and ``rejected`` (the rest)."""

    spec: PlanSpec
    ranked: list[Candidate]
    rejected: list[Candidate]
    estimates: int
    seconds: float

    @property
    def best(self) -> Candidate | None:
        """The cheapest layout that meets the SLO, if any."""
        return self.ranked[0] if self.ranked else None

    def charted(self) -> list[Candidate]:
        """The layouts with a TTFT estimate to draw (those that started and completed)."""
        return [c for c in (*self.ranked, *self.rejected)
                if c.metrics.get("ttft_p99_ms", math.inf) < math.inf]

    def why_rejected(self) -> dict[str, list[Candidate]]:
        """The rejected layouts grouped by the kind of reason (``does not fit``, ``misses
        ttft_p99_ms``, ...), each group cheapest first."""
        groups: dict[str, list[Candidate]] = {}
        for candidate in sorted(self.rejected, key=_cost_key):
            kind = (candidate.reason or "rejected").split(":")[0].split(" by ")[0]
            groups.setdefault(kind, []).append(candidate)
        return groups

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the spec, the ranked and rejected layouts, and the search's cost."""
        return {
            "spec": self.spec.model_dump(mode="json"),
            "best": None if self.best is None else self.best.to_dict(),
            "ranked": [c.to_dict() for c in self.ranked],
            "rejected": [c.to_dict() for c in sorted(self.rejected, key=_cost_key)],
            "prices": {gpu: {"usd_per_gpu_hour": self.spec.price(gpu),
                             "source": self.spec.price_source(gpu)}
                       for gpu in self.spec.gpus.types},
            "estimates": self.estimates,
            "seconds": round(self.seconds, 3),
        }


def _cost_key(candidate: Candidate) -> tuple[float, str, int, int]:
    return (candidate.usd_per_hour, candidate.gpu, candidate.tp, candidate.replicas)
