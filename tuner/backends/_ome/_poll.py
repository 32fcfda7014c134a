"""The sleeps of one wait on the cluster: fast at first (a twin is up in a second), then slower."""

from __future__ import annotations

import time

__all__ = ["Poll"]

_POLL_FIRST_S = 0.1
_POLL_MAX_S = 2.0  # spares the API server during long waits


class Poll:
    """The sleeps of one wait: from 0.1 s doubling to 2 s, never past the deadline."""

    def __init__(self, timeout_s: float) -> None:
        self._deadline = time.monotonic() + timeout_s
        self._delay = _POLL_FIRST_S

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self._deadline

    def sleep(self) -> None:
        """Wait before the next check."""
        time.sleep(max(0.0, min(self._delay, self._deadline - time.monotonic())))
        self._delay = min(self._delay * 2, _POLL_MAX_S)
