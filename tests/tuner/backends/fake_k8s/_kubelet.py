"""What the kubelet does with an engine container: run it, probe its start-up, record its end.

Only the parts the tuner reads are modelled, after the kubelet's own rules:

* a container that ends gets ``terminated.exitCode`` (128 + signal when killed) and reason
  ``Error`` (``OOMKilled`` is the kernel's cgroup kill, never a CUDA OOM); its ``message`` is
  what the process wrote to its termination-message file (SGLang writes none), or, with
  ``terminationMessagePolicy: FallbackToLogsOnError`` and a non-zero exit, the last 80 lines
  of its log capped at 2048 bytes (``kubecontainer.MaxContainerTerminationMessageLog*``);
* a ``startupProbe`` (``httpGet``) polls from ``initialDelaySeconds`` every ``periodSeconds``;
  after ``failureThreshold`` failures in a row the kubelet records a ``Warning Unhealthy``
  event, kills the container (``Normal Killing``: "Container <name> failed startup probe, will
  be restarted") and restarts it. The fake does not run the restarted container: it shows the
  back-off a container that fails the same way reaches.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from ._objects import now
from ._schemas import REPO, Json

# pkg/kubelet/container: MaxContainerTerminationMessageLogLines / ...LogLength.
_LOG_LINES = 80
_LOG_BYTES = 2048


class Server:
    """The process standing in for an engine pod's container."""

    def __init__(self, argv: list[str], port: int | None, log: Path, runner: Json) -> None:
        self.argv = argv
        self.port = port
        self.log = log
        self.runner = runner
        self.started_at = now()
        self.started = time.monotonic()
        self.probe_failures = 0
        self.next_probe = self.started + float(self._probe().get("initialDelaySeconds", 0))
        with log.open("wb") as out:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, cwd=REPO,
                                            env={**os.environ, "PYTHONPATH": str(REPO)})
        self.healthy = False

    def _probe(self) -> Json:
        return self.runner.get("startupProbe") or {}

    def terminated(self, code: int) -> Json:
        """The ``terminated`` state the kubelet records for an exit status ``code``."""
        exit_code = 128 - code if code < 0 else code
        message = ""  # SGLang writes nothing to /dev/termination-log
        policy = self.runner.get("terminationMessagePolicy", "File")
        if policy == "FallbackToLogsOnError" and exit_code != 0:
            lines = self.log.read_bytes().splitlines(keepends=True)[-_LOG_LINES:]
            message = b"".join(lines)[-_LOG_BYTES:].decode(errors="replace")
        return {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                "message": message, "startedAt": self.started_at, "finishedAt": now()}

    def startup_probe_failed(self) -> str | None:
        """Probe once when due; the kubelet's failure text once ``failureThreshold`` is hit."""
        probe = self._probe()
        get = probe.get("httpGet")
        if not get or self.healthy or time.monotonic() < self.next_probe:
            return None
        self.next_probe = time.monotonic() + float(probe.get("periodSeconds", 10))
        url = f"http://127.0.0.1:{self.port}{get.get('path', '/')}"
        try:
            if self.port is not None and httpx.get(url, timeout=1).status_code < 400:
                self.probe_failures = 0
                return None
            error = "HTTP probe failed"
        except httpx.HTTPError as e:
            error = f'Get "{url}": {e}'
        self.probe_failures += 1
        if self.probe_failures < int(probe.get("failureThreshold", 3)):
            return None
        return f"Startup probe failed: {error}"

    def kill(self) -> int:
        """Kill the container as the kubelet does after its grace period; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        return self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
