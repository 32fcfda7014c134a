"""Servers as local processes: one implementation for the twin and for real SGLang.

Each server runs in its own session (process group) with its output in a log file, and carries
two environment tags (study and deployment) so the driver can find and kill it from the ids alone,
even when the trial actor that started it is gone.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import ClassVar

import httpx
import psutil

from tuner import serverargs
from tuner.backends.base import Backend, Deployment, deployment_name
from tuner.exceptions import BackendError, DeployTimeoutError

__all__ = ["ProcessBackend", "failure_reason"]

logger = logging.getLogger(__name__)
STUDY_TAG = "AUTOTUNER_STUDY"
DEPLOYMENT_TAG = "AUTOTUNER_DEPLOYMENT"
_OOM = re.compile(r"out of memory|not enough memory|\bOOM\b", re.IGNORECASE)
_STOP_GRACE_S = 10.0
# Servers this process started, so it can reap them (a killed child stays a zombie until then).
_CHILDREN: dict[str, subprocess.Popen[bytes]] = {}


def failure_reason(log_text: str) -> str:
    """``oom`` when a server log shows a memory failure, else ``startup``."""
    return "oom" if _OOM.search(log_text) else "startup"


class ProcessBackend(Backend):
    """Base of the backends whose servers are processes on this host.

    Subclasses give the command that starts a server (``server_command``) and any extra flags.
    """

    DESCRIBE_PORT: ClassVar[int] = 30000

    def server_command(self) -> list[str]:
        """The interpreter and module that start a server."""
        raise NotImplementedError

    def extra_argv(self) -> list[str]:
        """Flags added after the trial's own (the twin's --gpu, --time-scale)."""
        return []

    def time_scale(self) -> float:
        """How much faster than real time the servers run."""
        return 1.0

    def argv(self, config: dict[str, object], port: int) -> list[str]:
        """The full command of a server with this flag set."""
        model = self.spec.model
        return [
            *self.server_command(),
            "--model-path",
            model.model_path,
            "--served-model-name",
            model.name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--enable-metrics",
            *serverargs.to_argv(config),
            *self.extra_argv(),
        ]

    def describe(self, config: dict[str, object]) -> str:
        """The shell-quoted command (with SGLang's default port) of this flag set."""
        return shlex.join(self.argv(config, self.DESCRIBE_PORT))

    def _servers_dir(self) -> Path:
        path = self.workdir / "servers"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def deploy(self, config: dict[str, object], *, trial_id: str) -> Deployment:
        name = deployment_name(self.study_id, trial_id)
        self.teardown(name)  # a retried trial must not find its old server on the way
        port = _free_port()
        log_path = self._servers_dir() / f"{name}.log"
        log_path.write_bytes(b"")
        endpoint = f"http://127.0.0.1:{port}"
        self._spawn(name, self.argv(config, port), log_path, endpoint)
        return Deployment(
            name=name,
            endpoint=endpoint,
            served_model=self.spec.model.name,
            time_scale=self.time_scale(),
            log_path=str(log_path),
            labels={"study": self.study_id, "trial": trial_id},
            config=config,
        )

    def _spawn(self, name: str, argv: list[str], log_path: Path, endpoint: str) -> None:
        """Start a server in its own session, tagged, its output appended to ``log_path``."""
        env = {**os.environ, STUDY_TAG: self.study_id, DEPLOYMENT_TAG: name}
        with log_path.open("ab") as log:
            log.write(f"$ {shlex.join(argv)}\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as e:
                raise BackendError(
                    f"cannot start {argv[0]}: {e.strerror}; check backend.python",
                    reason="startup",
                    log_path=str(log_path),
                ) from e
        _CHILDREN[name] = process
        (self._servers_dir() / f"{name}.json").write_text(
            json.dumps({"pid": process.pid, "endpoint": endpoint, "argv": argv})
        )

    def wait_ready(self, deployment: Deployment, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        respawned = False
        while time.monotonic() < deadline:
            process = self._process(deployment.name)
            if not _running(process):
                log = _read(deployment.log_path)
                child = _CHILDREN.get(deployment.name)
                code = child.poll() if child is not None else None
                # Killed before it wrote a word (seen under heavy load): not the server's
                # verdict on its flags, so start it once more before calling the trial failed.
                if not respawned and _silent(log) and (code is None or code < 0):
                    respawned = True
                    logger.warning(
                        "server %s died silently (exit %s); starting it again",
                        deployment.name,
                        code,
                    )
                    self._respawn(deployment)
                    continue
                raise BackendError(
                    f"server {deployment.name} exited (status {code}) while starting: "
                    f"{_last_error(log)}; full log: {deployment.log_path}",
                    reason=failure_reason(log),
                    log_path=deployment.log_path,
                )
            try:
                if httpx.get(f"{deployment.endpoint}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise DeployTimeoutError(
            f"server {deployment.name} was not healthy after {timeout_s:.0f} s; raise "
            f"backend.startup_timeout_s or read {deployment.log_path}",
            log_path=deployment.log_path,
        )

    def _respawn(self, deployment: Deployment) -> None:
        record = json.loads((self._servers_dir() / f"{deployment.name}.json").read_text())
        child = _CHILDREN.pop(deployment.name, None)
        if child is not None:
            child.wait()
        assert deployment.log_path is not None
        self._spawn(
            deployment.name, record["argv"], Path(deployment.log_path), deployment.endpoint
        )

    def alive(self, deployment: Deployment) -> str | None:
        process = self._process(deployment.name)
        if not _running(process):
            return (
                f"server {deployment.name} has exited: {_last_error(_read(deployment.log_path))}"
            )
        return super().alive(deployment)

    def teardown(self, name: str) -> None:
        process = self._process(name)
        if process is not None:
            _kill_group(process)
        child = _CHILDREN.pop(name, None)
        if child is not None:
            child.kill()  # already gone unless its group could not be found; then it goes now
            child.wait()
        (self._servers_dir() / f"{name}.json").unlink(missing_ok=True)

    def sweep(self) -> list[str]:
        names = {p.stem for p in self._servers_dir().glob("*.json")}
        names.update(self._tagged())
        for name in names:
            self.teardown(name)
        return sorted(names)

    def _tagged(self) -> dict[str, psutil.Process]:
        """This study's server processes, by deployment name, found by their tags."""
        found = {}
        for process in psutil.process_iter():
            tags = _tags(process)
            if tags.get(STUDY_TAG) == self.study_id and DEPLOYMENT_TAG in tags:
                found[tags[DEPLOYMENT_TAG]] = process
        return found

    def _process(self, name: str) -> psutil.Process | None:
        """The server process of a deployment: our own child, or else found from its record
        or by its tags (checked, since pids get reused)."""
        child = _CHILDREN.get(name)
        if child is not None:  # right after fork its environment is not yet the tagged one
            try:
                return psutil.Process(child.pid)
            except psutil.Error:
                return None
        record = self._servers_dir() / f"{name}.json"
        try:
            process = psutil.Process(json.loads(record.read_text())["pid"])
        except (OSError, ValueError, KeyError, psutil.Error):
            return self._tagged().get(name)
        return process if _tags(process).get(DEPLOYMENT_TAG) == name else None


def _tags(process: psutil.Process) -> dict[str, str]:
    try:
        env = process.environ()
    except (psutil.Error, OSError):
        return {}
    return {k: env[k] for k in (STUDY_TAG, DEPLOYMENT_TAG) if k in env}


def _kill_group(process: psutil.Process) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left after a grace period."""
    try:
        group = os.getpgid(process.pid)
    except ProcessLookupError:
        return
    members = [process, *process.children(recursive=True)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + _STOP_GRACE_S
        while any(_running(p) for p in members) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not any(_running(p) for p in members):
            return


def _running(process: psutil.Process | None) -> bool:
    """Alive and not a zombie (an exited child whose parent has not reaped it yet)."""
    try:
        return process is not None and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read(path: str | None) -> str:
    try:
        return Path(path).read_text(errors="replace") if path else ""
    except OSError:
        return ""


def _silent(log: str) -> bool:
    """Whether a server log holds nothing but the commands that started it."""
    return all(line.startswith("$ ") for line in log.splitlines() if line.strip())


def _last_error(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"error|exception|fail", line, re.IGNORECASE)]
    return (errors or lines or ["(no output)"])[-1][:500]
