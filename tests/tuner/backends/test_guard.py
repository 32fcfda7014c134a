"""The server guard: a server never outlives the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

GUARD = [sys.executable, "-m", "tuner.backends._guard", "--"]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _server_of(guard_pid: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = psutil.Process(guard_pid).children()
        if children:
            return children[0].pid
        time.sleep(0.05)
    raise AssertionError("the guard started no server")


@pytest.mark.parametrize("kill", ["owner", "guard"])
def test_the_server_dies_with_its_owner_or_its_guard(kill: str) -> None:
    # The owner stands for a trial actor: it starts the guard, then is SIGKILLed.
    owner = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time\n"
         f"p = subprocess.Popen({GUARD + SLEEPER!r}, start_new_session=True)\n"
         "print(p.pid, flush=True)\n"
         "time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    guard = int(owner.stdout.readline())
    server = _server_of(guard)
    os.kill(owner.pid if kill == "owner" else guard, signal.SIGKILL)
    owner.kill()
    owner.wait()
    assert _wait_gone(server), f"server {server} outlived its {kill}"
    assert _wait_gone(guard)


@pytest.mark.parametrize(("code", "expected"), [("raise SystemExit(3)", 3),
                                                ("import os; os.kill(os.getpid(), 9)", -9)])
def test_the_guard_exits_as_its_server_did(code: str, expected: int) -> None:
    done = subprocess.run([*GUARD, sys.executable, "-c", code], timeout=30)
    assert done.returncode == expected


def test_a_terminated_group_stops_the_server_gracefully() -> None:
    server_code = ("import signal, sys, time\n"
                   "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
                   "time.sleep(120)\n")
    guard = subprocess.Popen([*GUARD, sys.executable, "-c", server_code],
                             start_new_session=True)
    server = _server_of(guard.pid)
    time.sleep(0.3)  # let the server install its handler
    os.killpg(guard.pid, signal.SIGTERM)
    assert guard.wait(timeout=15) == 7  # the server's own graceful exit, relayed
    assert _wait_gone(server)


def test_a_missing_program_is_reported() -> None:
    done = subprocess.run([*GUARD, "/nonexistent/python"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 127 and "cannot start /nonexistent/python" in done.stderr
