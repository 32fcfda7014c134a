"""Fault-suite fixtures: every test leaves no server behind, even when it fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import kill_tagged


@pytest.fixture
def studies() -> Iterator[set[str]]:
    """Ids of the studies a test runs; their leftover servers are killed after the test (the
    test itself asserts there are none: this only keeps one failure from spoiling the next)."""
    ids: set[str] = set()
    yield ids
    kill_tagged(ids)
