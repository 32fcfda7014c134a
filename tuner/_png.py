"""PNG charts for the CLI, drawn with matplotlib into files (no display, no GUI toolkit)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["png"]


@contextmanager
def png(path: Path, *, columns: int = 1, size: tuple[float, float] = (10, 3.5)) -> Iterator[Any]:
    """Yields the axes of a figure of ``columns`` charts side by side (one axes object for
    one column, an array otherwise), and writes the figure to ``path`` when the block ends."""
    import matplotlib

    matplotlib.use("Agg")  # files only: importing pyplot must not look for a display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=size)
    try:
        yield axes
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
