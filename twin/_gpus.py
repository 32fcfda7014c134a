"""The GPUs the twin simulates: dense peaks, memory as torch reports it, links.

Sources are named per GPU; "note" is the project's research note on SGLang performance
(/work/shared/research/sglang-perf.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["GPU_TABLE", "GpuSpec"]


@dataclasses.dataclass(frozen=True)
class GpuSpec:
    """Dense peak numbers of one GPU model.

    Attributes:
        name: Name accepted by ``--gpu``.
        bf16_flops: Dense bf16 tensor-core peak, FLOP/s.
        fp8_flops: Dense fp8 peak, FLOP/s (0 when the GPU has no fp8 tensor cores).
        hbm_bytes_per_s: Memory bandwidth, bytes/s.
        memory_mib: Capacity as torch reports it, MiB (SGLang's memory tiers use this).
        link_bytes_per_s: GPU-to-GPU bandwidth per direction, bytes/s.
        nvlink: True for NVLink/NVSwitch, False for PCIe.
        source: Where the numbers come from.
    """

    name: str
    bf16_flops: float
    fp8_flops: float
    hbm_bytes_per_s: float
    memory_mib: int
    link_bytes_per_s: float
    nvlink: bool
    source: str


_AIC = "aiconfigurator aic-core systems/*.yaml via note §4"

GPU_TABLE: Mapping[str, GpuSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            GpuSpec(
                "H100",
                989e12,
                1979e12,
                3.35e12,
                81559,
                450e9,
                True,
                f"{_AIC} (H100 SXM); 81559 MiB torch-reported (note §1)",
            ),
            GpuSpec(
                "H100-PCIe",
                756.5e12,
                1513e12,
                2.0e12,
                81559,
                64e9,
                False,
                f"{_AIC} (H100 PCIe, PCIe5 64 GB/s)",
            ),
            GpuSpec(
                "H200",
                989e12,
                1979e12,
                4.8e12,
                143771,
                450e9,
                True,
                f"{_AIC} (H200 SXM); 143771 MiB torch-reported (note §1)",
            ),
            GpuSpec(
                "B200",
                2250e12,
                4500e12,
                7.7e12,
                184320,
                900e9,
                True,
                f"{_AIC} (B200, 180 GiB)",
            ),
            GpuSpec(
                "A100-80G",
                312e12,
                0.0,
                2.039e12,
                81920,
                300e9,
                True,
                f"{_AIC} (A100 SXM 80G); 81920 MiB matches the note's derived mem fraction 0.836",
            ),
            GpuSpec(
                "A100-40G",
                312e12,
                0.0,
                1.555e12,
                40960,
                300e9,
                True,
                "NVIDIA A100 datasheet (40 GB HBM2, 1555 GB/s); peaks as A100-80G",
            ),
            GpuSpec(
                "L40S",
                362e12,
                733e12,
                0.864e12,
                46068,
                32e9,
                False,
                f"{_AIC} (L40S, 48 GB, PCIe4 x16 32 GB/s)",
            ),
            GpuSpec(
                "RTX-5090",
                209.5e12,
                419e12,
                1.792e12,
                32607,
                64e9,
                False,
                "NVIDIA RTX Blackwell whitepaper (bf16 dense with fp32 accumulate, GDDR7 "
                "1792 GB/s, 32 GB); only used by the sglang PR #40346 anchor",
            ),
        )
    }
)
