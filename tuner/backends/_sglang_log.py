"""Why an SGLang server died, read from its log: the scheduler's exception, not the echoes.

When a scheduler (or detokenizer) process of SGLang 0.5.5 fails, it logs ``Scheduler hit an
exception: <traceback>`` and sends SIGQUIT to the launching process, whose handler logs
``Received sigquit from a child process. It usually means the child failed.`` and SIGKILLs the
whole tree (``sglang/srt/managers/scheduler.py`` ``run_scheduler_process``,
``sglang/srt/entrypoints/engine.py`` ``launch_phase_sigquit_handler``). The last line of the log
is then that echo, and the cause is the final line of the scheduler's traceback above it.
The same reading serves the ``local`` backend's log file and the tail of an OME pod's log that
the kubelet makes the container's termination message.
"""

from __future__ import annotations

import re

__all__ = ["explain", "failure_reason", "is_oom"]

# CUDA OOMs (torch.OutOfMemoryError, "CUDA out of memory"), SGLang's own "Not enough memory"
# when the KV pool comes out empty, and the kubelet's OOMKilled for host memory.
_OOM = re.compile(r"out of memory|not enough memory|outofmemory|\boom(killed)?\b", re.IGNORECASE)
# What the launching process logs after a child died: an effect, never the cause.
_ECHO = re.compile(
    r"received sigquit|sigquit received|usually means (the|one) child failed"
    r"|scheduler is dead|initialization failed\. please see the error messages above"
    r"|^\[[^\]]*\] exit code: -?\d+$",
    re.IGNORECASE,
)
_ERROR = re.compile(r"error|exception|fail", re.IGNORECASE)
# The last line of a Python traceback: a (dotted) exception name, then ": message" or nothing.
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(: .*)?$")
_MAX_CHARS = 500


def is_oom(text: str) -> bool:
    """Whether ``text`` reports a GPU or host memory failure."""
    return bool(_OOM.search(text))


def failure_reason(log_text: str) -> str:
    """``oom`` when the line that explains a server's death is a memory failure, else
    ``startup``."""
    return "oom" if is_oom(explain(log_text)) else "startup"


def explain(log_text: str) -> str:
    """The one line of a server log that says why the server died.

    In order: the last memory-failure line (an OOM is the cause whatever follows it); the
    final line of the last Python traceback; the last line naming an error, exception or
    failure that is not the launcher's echo of a dead child; the last line.
    """
    lines = [line.rstrip() for line in log_text.splitlines() if line.strip()]
    if not lines:
        return "(no output)"
    causes = [line for line in lines if not _ECHO.search(line)]
    oom = [line for line in causes if _OOM.search(line)]
    final = _traceback_finals(causes)
    errors = [line for line in causes if _ERROR.search(line)]
    best = (oom or final or errors or lines)[-1]
    return best.strip()[:_MAX_CHARS]


def _traceback_finals(lines: list[str]) -> list[str]:
    """The exception line that ends each ``Traceback (most recent call last):`` block."""
    finals = []
    inside = False
    for line in lines:
        if line.rstrip().endswith("Traceback (most recent call last):"):
            inside = True  # the header may follow a log prefix, as SGLang logs it
        elif inside and not line[:1].isspace():
            inside = False
            if _EXCEPTION.match(line):
                finals.append(line)
    return finals
