"""The service in a subprocess on a free port, as ``autotuner serve`` runs it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LiveService:
    """A running service: its base URL, process and log."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_service(workdir: Path, *, gpus: int = 2, token: str | None = None,
                 timeout: float = 60.0) -> Iterator[LiveService]:
    """Start ``webapp.serve`` over ``workdir/store.db``; on exit, Ctrl-C it and wait."""
    port = free_port()
    code = ("import sys, webapp; webapp.serve('127.0.0.1', int(sys.argv[1]), sys.argv[2], "
            "gpus=int(sys.argv[3]))")
    # Ray's session files in a folder of its own: other Ray users of the machine cleaning
    # /tmp/ray cannot pull them away (short path: Ray's unix sockets live there)
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    env = {**os.environ, "AUTOTUNER_HOME": str(workdir), "RAY_TMPDIR": ray_tmp}
    env.pop("AUTOTUNER_TOKEN", None)
    if token:
        env["AUTOTUNER_TOKEN"] = token
    log = workdir / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(port), str(workdir / "store.db"), str(gpus)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    service = LiveService(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited:\n{service.log_tail()}")
            try:
                if httpx.get(f"{service.base}/api/health", headers=headers,
                             timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not come up:\n{service.log_tail()}")
            time.sleep(0.2)
        yield service
    finally:
        stop(process)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def stop(process: subprocess.Popen[bytes], timeout: float = 120.0) -> int:
    """Ctrl-C (running studies stop, their servers go), then wait; kill if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)
