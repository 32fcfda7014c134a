"""The default price table: USD per GPU-hour by GPU type, with the source of each price
(the planner's costs and the ``cost_per_mtok`` objective)."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

__all__ = ["default_price", "default_prices", "usd_per_mtok"]


@functools.cache
def _table() -> dict[str, dict[str, Any]]:
    text = resources.files("tuner").joinpath("prices.yaml").read_text()
    return {gpu: {**row, "date": str(row["date"])} for gpu, row in yaml.safe_load(text).items()}


def default_prices() -> dict[str, dict[str, Any]]:
    """The committed table ``tuner/prices.yaml`` by GPU type: each row has
    ``usd_per_gpu_hour``, ``source`` (a URL) and ``date`` (a fresh copy each call)."""
    return {gpu: dict(row) for gpu, row in _table().items()}


def default_price(gpu: str | None) -> float | None:
    """USD per GPU-hour of ``gpu`` in the table; None for a GPU it has no row for."""
    row = _table().get(gpu) if gpu else None
    return float(row["usd_per_gpu_hour"]) if row else None


def usd_per_mtok(usd_per_hour: float, tokens_per_s: float) -> float:
    """What a million output tokens cost at ``tokens_per_s`` on hardware at ``usd_per_hour``
    (``tokens_per_s`` above 0)."""
    return usd_per_hour / (tokens_per_s * 3600) * 1e6
