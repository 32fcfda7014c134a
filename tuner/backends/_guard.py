"""Runs one server and takes it down with its owner: ``python -m tuner.backends._guard -- ARGV``.

A trial's server must not outlive the trial actor that started it, whatever kills the actor
(SIGKILL, an out-of-memory kill, its node's raylet dying) and without counting on Ray to
reap the actor's children. The guard is the server's parent: it relays the server's exit
status as its own, forwards SIGTERM (so a teardown stays graceful), ends the server when its
own parent (the actor) goes away, and sets the server's parent-death signal so that even a
SIGKILL of the guard takes the server with it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

# Seconds between two looks at the owner: a server outlives its trial by at most this.
_WATCH_S = 0.5
# Seconds a server gets to exit after SIGTERM before the guard sends SIGKILL.
_GRACE_S = 10.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _prepare_server() -> None:
    # Runs in the forked child before exec; the guard has one thread, so this is safe.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the guard ignores it; the server must not
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(_GRACE_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _exit_like(code: int) -> None:
    """Exit with the server's status: the same signal, or the same exit code."""
    if code < 0:
        if -code != signal.SIGKILL:  # SIGKILL has no handler to reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


def main(argv: list[str]) -> None:
    if not argv or argv[0] != "--" or len(argv) < 2:
        sys.exit("usage: python -m tuner.backends._guard -- COMMAND [ARGS...]")
    owner = os.getppid()
    # A teardown's SIGTERM reaches the whole group: the server ends on its own, and the guard
    # waits to relay how. Set before the server starts, so no SIGTERM finds the default.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        server = subprocess.Popen(
            argv[1:],
            stdin=subprocess.DEVNULL,
            preexec_fn=_prepare_server,
        )
    except OSError as e:
        print(f"error: cannot start {argv[1]}: {e.strerror}", file=sys.stderr, flush=True)
        sys.exit(127)
    while (code := server.poll()) is None:
        if os.getppid() != owner:  # the owner died: this process was handed to another parent
            _stop(server)
            code = server.returncode
            break
        time.sleep(_WATCH_S)
    _exit_like(code)


if __name__ == "__main__":
    main(sys.argv[1:])
