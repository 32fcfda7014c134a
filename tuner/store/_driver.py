"""Who runs a study, and whether that process is still alive.

A running study carries the identity of its driver (``host:pid:start time``) and a heartbeat
the driver refreshes. On the driver's own host, liveness is exact and immediate: the process
with that pid exists and started at that time (pids get reused). Elsewhere only the
heartbeat tells, so a driver on another host counts as gone once its heartbeat is older than
``LEASE_S``.
"""

from __future__ import annotations

import os
import socket
import time

import psutil

__all__ = ["HEARTBEAT_S", "LEASE_S", "driver_alive", "this_driver"]

# Seconds between two heartbeats of a live driver.
HEARTBEAT_S = 5.0
# Seconds without a heartbeat after which a driver on another host counts as gone: six missed
# beats, so a driver stalled by a loaded host (seen: 2-3 s pauses on 2 cores) is not declared
# dead, while a study of a dead remote driver is offered for resume within a minute.
LEASE_S = 30.0


def this_driver() -> str:
    """The identity of this process as a study's driver."""
    return _identity(os.getpid())


def _identity(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.2f}"


def driver_alive(driver: str | None, heartbeat_at: float | None, now: float | None = None) -> bool:
    """Whether the driver ``driver`` (from :func:`this_driver`) still runs its study."""
    if not driver:
        return False
    host, _, rest = driver.partition(":")
    if host == socket.gethostname():
        try:
            return _identity(int(rest.partition(":")[0])) == driver
        except (ValueError, psutil.Error):
            return False
    now = time.time() if now is None else now
    return heartbeat_at is not None and now - heartbeat_at <= LEASE_S
