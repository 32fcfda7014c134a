"""What ``workload from-log`` found, for people: length histograms as text, and as a PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tuner._png import png

__all__ = ["histogram_lines", "write_png"]

_BAR = "█"


def histogram_lines(title: str, values: Sequence[int], *, bins: int = 12, width: int = 40
                    ) -> list[str]:
    """A text histogram: one line per bin, ``low-high | bar count``."""
    data = np.asarray(values, dtype=float)
    if not len(data):
        return [f"{title}: no values"]
    counts, edges = np.histogram(data, bins=min(bins, max(1, len(np.unique(data)))))
    most = max(int(counts.max()), 1)
    label_width = len(f"{int(edges[-1]):,}") * 2 + 1
    lines = [f"{title} (tokens; {len(data):,} requests)"]
    for count, low, high in zip(counts, edges[:-1], edges[1:], strict=True):
        label = f"{int(low):,}-{int(high):,}".rjust(label_width)
        bar = _BAR * max(1 if count else 0, round(width * int(count) / most))
        lines.append(f"  {label} | {bar} {int(count):,}")
    return lines


def write_png(path: Path, inputs: Sequence[int], outputs: Sequence[int]) -> Path:
    """Input and output length histograms side by side; returns ``path``."""
    with png(path, columns=2) as axes:
        for ax, values, name in ((axes[0], inputs, "input"), (axes[1], outputs, "output")):
            ax.hist(values, bins=50, color="#4c72b0")
            ax.set_xlabel(f"{name} tokens")
            ax.set_ylabel("requests")
    return path
