"""The types of the twin's fact tables (``twin/_facts.py``, ``_moe_facts.py``,
``_host_facts.py``)."""

from __future__ import annotations

import dataclasses

__all__ = ["FITTED_TO_ANCHORS", "SERVER_ARGS_MEMORY", "Fact", "MemoryTier"]

# Where SGLang sizes memory at start-up: the source of several facts in the tables.
SERVER_ARGS_MEMORY = "sglang 0.5.5 srt/server_args.py ServerArgs._handle_gpu_memory_settings"
# The source of the facts fitted by hand to the published anchors.
FITTED_TO_ANCHORS = "fitted to benchmarks/fidelity_anchors.yaml (note §4)"


@dataclasses.dataclass(frozen=True)
class Fact:
    """One number of the performance model.

    Attributes:
        value: The number, in ``unit``.
        unit: Unit of ``value``.
        meaning: What the model uses it for.
        source: Measurement, code or derivation it comes from.
        calibrated: True when fitted to the published end-to-end anchors.
    """

    value: float
    unit: str
    meaning: str
    source: str
    calibrated: bool = False


@dataclasses.dataclass(frozen=True)
class MemoryTier:
    """SGLang's auto sizes for GPUs with less memory than ``below_mib``.

    Attributes:
        below_mib: Upper bound (exclusive) of the tier, MiB as torch reports it.
        chunked_prefill_size: Auto ``--chunked-prefill-size``, tokens.
        cuda_graph_max_bs: Auto ``--cuda-graph-max-bs`` when tp < 4, requests.
        cuda_graph_max_bs_tp4: Auto ``--cuda-graph-max-bs`` when tp >= 4, requests.
    """

    below_mib: float
    chunked_prefill_size: int
    cuda_graph_max_bs: int
    cuda_graph_max_bs_tp4: int
