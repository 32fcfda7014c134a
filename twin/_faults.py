"""The ``--fault`` option: failures a test can ask the twin's server to show."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Iterable

FAULT_HELP = (
    "inject a failure (repeatable): crash-after=N (exit after N requests), hang (accept "
    "connections, never answer), slow-start=SECONDS (add to start-up), http500-rate=P "
    "(answer a fraction P of generation requests with HTTP 500), cold-prefill=SECONDS (the "
    "first prefill forward longer than start-up's warm-up prompt takes SECONDS more, as "
    "kernels compiled on first use of a shape make it)"
)


@dataclasses.dataclass(frozen=True)
class Faults:
    """Failures to inject; the defaults inject none.

    Attributes:
        crash_after: Exit the process when request number ``crash_after + 1`` arrives.
        hang: Accept connections but never answer any request.
        slow_start_s: Wall seconds added to the start-up time.
        http500_rate: Fraction of generation requests answered with HTTP 500.
        cold_prefill_s: Seconds (server time) added to each scheduler's first prefill
            forward of more tokens than the start-up warm-up's prompt: SGLang warms up (and
            answers /health) with a few tokens, so the first real batch is the first to run
            the larger prefill shapes, whose kernels (Triton fused MoE, DeepGEMM, FlashInfer)
            compile or autotune on first use.
    """

    crash_after: int | None = None
    hang: bool = False
    slow_start_s: float = 0.0
    http500_rate: float = 0.0
    cold_prefill_s: float = 0.0


def parse_fault(text: str) -> str:
    """Checks one ``--fault`` value (argparse ``type``).

    Args:
        text: ``name`` or ``name=value``.

    Returns:
        The text unchanged.

    Raises:
        argparse.ArgumentTypeError: Unknown fault name or bad value.
    """
    make_faults([text])
    return text


def make_faults(texts: Iterable[str] | None) -> Faults:
    """Builds the fault set from ``--fault`` values.

    Args:
        texts: The values, in order; a later value overrides an earlier one.

    Returns:
        The faults to inject.

    Raises:
        argparse.ArgumentTypeError: Unknown fault name or bad value.
    """
    faults = Faults()
    for text in texts or ():
        name, _, value = text.partition("=")
        try:
            if name == "crash-after":
                faults = dataclasses.replace(faults, crash_after=int(value))
            elif name == "hang" and not value:
                faults = dataclasses.replace(faults, hang=True)
            elif name == "slow-start":
                faults = dataclasses.replace(faults, slow_start_s=float(value))
            elif name == "http500-rate":
                faults = dataclasses.replace(faults, http500_rate=float(value))
            elif name == "cold-prefill":
                faults = dataclasses.replace(faults, cold_prefill_s=float(value))
            else:
                raise argparse.ArgumentTypeError(
                    f"unknown fault {text!r}; use crash-after=N, hang, slow-start=SECONDS, "
                    "http500-rate=P or cold-prefill=SECONDS"
                )
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"bad value in fault {text!r}") from e
        if (
            (faults.crash_after or 0) < 0
            or not (0.0 <= faults.slow_start_s < math.inf)
            or not (0.0 <= faults.cold_prefill_s < math.inf)
            or not (0.0 <= faults.http500_rate <= 1.0)
        ):
            raise argparse.ArgumentTypeError(f"value out of range in fault {text!r}")
    return faults
