"""Servers as local processes: one implementation for the twin and for real SGLang.

Each server runs under a guard (``_guard.py``) in its own session (process group) with its
output in a log file, and carries two environment tags (study and deployment) so a sweep can
find and kill it from the ids alone. The guard ends the server when the trial actor that
started it dies, however it dies. Records and processes are local to the node that started
them: teardown and sweep run there (see :meth:`Backend.on_node`).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar, cast

import httpx
import psutil

from tuner import serverargs
from tuner.backends import _sglang_log
from tuner.backends.base import Backend, Deployment, current_node, deployment_name
from tuner.exceptions import BackendError, DeployTimeoutError

__all__ = ["ProcessBackend"]

logger = logging.getLogger(__name__)
STUDY_TAG = "AUTOTUNER_STUDY"
DEPLOYMENT_TAG = "AUTOTUNER_DEPLOYMENT"
# The Ray node whose trial started the server: each node's sweep takes only its own, as it
# would on separate hosts (Ray test clusters put several nodes on one host).
NODE_TAG = "AUTOTUNER_NODE"
_STOP_GRACE_S = 10.0
_GUARD = [sys.executable, "-m", "tuner.backends._guard", "--"]
# Servers this process started, so it can reap them (a killed child stays a zombie until then).
_CHILDREN: dict[str, subprocess.Popen[bytes]] = {}


class ProcessBackend(Backend):
    """Base of the backends whose servers are processes on this host.

    Subclasses give the command that starts a server (``server_command``) and any extra flags.
    """

    DESCRIBE_PORT: ClassVar[int] = 30000
    NODE_LOCAL = True

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
            *serverargs.to_argv(config, self.spec.sglang_version),
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
        owner = self._owner(name)
        if owner is not None and owner != os.getpid():
            raise BackendError(
                f"deployment {name} is already owned by the live process {owner}; one trial "
                "never gets two servers. This is a bug: please report it",
                reason="startup",
            )
        self.teardown(name)  # a dead owner's leftover must not be in the way
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
            labels={"study": self.study_id, "trial": trial_id, "node": current_node() or ""},
            config=config,
        )

    def _spawn(self, name: str, argv: list[str], log_path: Path, endpoint: str) -> None:
        """Start a server under its guard in a new session, tagged, its output appended to
        ``log_path``."""
        env = {
            **os.environ,
            STUDY_TAG: self.study_id,
            DEPLOYMENT_TAG: name,
            NODE_TAG: current_node() or "",
        }
        with log_path.open("ab") as log:
            log.write(f"$ {shlex.join(argv)}\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(
                    [*_GUARD, *argv],
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
        record = {
            "pid": process.pid,
            "owner": os.getpid(),
            "node": current_node(),
            "endpoint": endpoint,
            "argv": argv,
        }
        (self._servers_dir() / f"{name}.json").write_text(json.dumps(record))

    def _owner(self, name: str) -> int | None:
        """The live process that deployed ``name`` (a trial actor), from its record."""
        try:
            owner = int(json.loads((self._servers_dir() / f"{name}.json").read_text())["owner"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return owner if psutil.pid_exists(owner) else None

    def wait_ready(self, deployment: Deployment, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        respawned = False
        while time.monotonic() < deadline:
            process = self._process(deployment.name)
            if not _running(process):
                log = _read(deployment.log_path)
                output = _server_output(log)
                child = _CHILDREN.get(deployment.name)
                code = child.poll() if child is not None else None
                # Killed before it wrote a word (seen under heavy load): not the server's
                # verdict on its flags, so start it once more before calling the trial failed.
                silent = child is not None and not output.strip() and (code is None or code < 0)
                if silent and not respawned:
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
                    f"{_sglang_log.explain(output)}; full log: {deployment.log_path}",
                    reason=_sglang_log.failure_reason(output),
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
        # Only our own child, with its own argv: never from a record another process wrote.
        child = _CHILDREN.pop(deployment.name)
        child.wait()
        assert deployment.log_path is not None
        argv = cast(list[str], child.args)[len(_GUARD) :]  # _spawn passes lists of str
        self._spawn(deployment.name, argv, Path(deployment.log_path), deployment.endpoint)

    def exited(self, deployment: Deployment) -> str | None:
        child = _CHILDREN.get(deployment.name)
        if child is not None:  # our own: its exit status is known
            code = child.poll()
            if code is None:
                return None
            status = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        elif _running(self._process(deployment.name)):
            return None
        else:
            status = "exited"
        return f"server {deployment.name} {status}; last log lines: {_tail(deployment.log_path)}"

    def alive(self, deployment: Deployment) -> str | None:
        return self.exited(deployment) or super().alive(deployment)

    def teardown(self, name: str) -> None:
        self._stop(name)

    def _stop(self, name: str) -> bool:
        """Tear ``name`` down on this node; whether a live server was there to stop."""
        process = self._process(name)
        live = _running(process)
        if process is not None:
            _kill_group(process)
        child = _CHILDREN.pop(name, None)
        if child is not None:
            child.kill()  # already gone unless its group could not be found; then it goes now
            child.wait()
        (self._servers_dir() / f"{name}.json").unlink(missing_ok=True)
        return live

    def sweep(self) -> list[str]:
        """Stop every server of this study that this node started (all of this host's,
        outside Ray), found by record or by tag; the names of those that were still
        running."""
        node = current_node()
        names = set(self._tagged(node))
        for path in self._servers_dir().glob("*.json"):
            try:
                started_on = json.loads(path.read_text()).get("node")
            except (OSError, ValueError):
                started_on = None
            if node is None or started_on in (None, node):
                names.add(path.stem)
        return sorted(name for name in names if self._stop(name))

    def _tagged(self, node: str | None = None) -> dict[str, psutil.Process]:
        """This study's server processes, by deployment name, found by their tags (only
        those started on ``node``, when given)."""
        found = {}
        for process in psutil.process_iter():
            tags = _tags(process)
            if tags.get(STUDY_TAG) != self.study_id or DEPLOYMENT_TAG not in tags:
                continue
            if node is None or tags.get(NODE_TAG) in (None, "", node):
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
    return {k: env[k] for k in (STUDY_TAG, DEPLOYMENT_TAG, NODE_TAG) if k in env}


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


def _server_output(log: str) -> str:
    """A server log without the commands that started it (``$ argv`` lines, ours)."""
    return "\n".join(line for line in log.splitlines() if not line.startswith("$ "))


def _tail(path: str | None, lines: int = 5) -> str:
    """The last lines of a server log, on one line."""
    text = [line.strip() for line in _read(path).splitlines() if line.strip()]
    return " | ".join(text[-lines:])[-1500:] or "(no output)"
