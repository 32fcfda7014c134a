"""Session-wide fixtures: one Ray instance for every test that runs studies."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# The pool of simulated GPU units of the shared Ray instance; studies may use fewer.
RAY_POOL = 4


@pytest.fixture(scope="session")
def ray_pool() -> Iterator[int]:
    """Start one quiet local Ray instance for the session; yield its GPU pool size."""
    import ray

    from tuner import init_ray

    os.environ.setdefault("RAY_TMPDIR", "/tmp")
    init_ray(gpus=RAY_POOL)
    yield RAY_POOL
    ray.shutdown()


@pytest.fixture(scope="session")
def sglang_wheel():
    """SGLang's wheel at the twin's version, fetched once (no deps) and read, never imported."""
    from tuner._sglang_wheel import SglangWheel
    from twin._resolve import VERSION

    return SglangWheel.fetch(VERSION)
