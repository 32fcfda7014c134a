"""The flag table read from the pinned SGLang wheel, built once per test session."""

from __future__ import annotations

import functools
from typing import Any

from tuner._sglang_wheel import SglangWheel
from tuner.serverargs._build import build_table


@functools.cache
def wheel_table(wheel: SglangWheel) -> dict[str, Any]:
    """What the builder reads from ``wheel`` (the same object for every caller: do not
    change it)."""
    return build_table(wheel)
