"""What SGLang prints when a scheduler dies at start-up, composed from the pinned wheel's source.

Every SGLang-authored line is taken from the wheel (parsed, never imported), so a release that
changes what it logs breaks these fixtures instead of leaving them to drift:

* ``configure_logger`` (``sglang/srt/utils/common.py``): ``[<time><prefix>] <message>``, where
  a scheduler's prefix is `` TP<rank>`` when ``tp_size > 1`` and the launcher's is empty;
* ``run_scheduler_process`` (``sglang/srt/managers/scheduler.py``): ``Scheduler hit an
  exception: <traceback>``, then SIGQUIT to the launcher;
* ``launch_phase_sigquit_handler`` (``sglang/srt/entrypoints/engine.py``): the launcher's echo,
  after which it SIGKILLs the tree and itself (exit -9, 137 in a container).

The exception lines are torch's and SGLang's own (``model_runner.py`` raises "Not enough
memory" when the KV pool comes out empty).
"""

from __future__ import annotations

import ast
from typing import Any

TIME = "2026-12-03 21:00:21"
# torch's CUDA caching allocator message, as torch 2.8 (SGLang 0.5.5's) words it.
TORCH_OOM = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 3.50 GiB. GPU 0 has a total "
    "capacity of 79.19 GiB of which 2.06 GiB is free. Including non-PyTorch memory, this "
    "process has 77.12 GiB memory in use."
)


def _fstring_head(wheel: Any, member: str, marker: str) -> str:
    """The literal start of the f-string in ``member`` that begins with ``marker``."""
    for node in ast.walk(wheel.module(member)):
        if isinstance(node, ast.JoinedStr) and isinstance(node.values[0], ast.Constant):
            head = str(node.values[0].value)
            if head.startswith(marker):
                return head
    raise AssertionError(f"{wheel.path.name}: no f-string starting {marker!r} in {member}")


def _constant(wheel: Any, member: str, marker: str) -> str:
    """The string constant in ``member`` that contains ``marker``."""
    for node in ast.walk(wheel.module(member)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and marker in node.value:
            return node.value
    raise AssertionError(f"{wheel.path.name}: no string with {marker!r} in {member}")


def _line_of(wheel: Any, member: str, text: str) -> int:
    for number, line in enumerate(wheel.read(member).splitlines(), 1):
        if text in line:
            return number
    raise AssertionError(f"{wheel.path.name}: {text!r} not in {member}")


def _message_not_enough_memory(wheel: Any) -> str:
    head = _fstring_head(wheel, "sglang/srt/model_executor/model_runner.py", "Not enough memory")
    return f"RuntimeError: {head}0.95"  # head ends "...mem_fraction_static=" ({x=} form)


def scheduler_death_log(wheel: Any, *, exception: str = TORCH_OOM, tp_size: int = 2) -> str:
    """The output of ``sglang.launch_server`` whose schedulers raise ``exception`` while
    building the memory pool, up to the moment the launcher SIGKILLs itself.

    ``exception`` may be ``"not-enough-memory"`` for SGLang's own empty-KV-pool error.
    """
    common = wheel.read("sglang/srt/utils/common.py")
    assert 'format = f"[%(asctime)s{prefix}] %(message)s"' in common, "log format changed"
    hit = _fstring_head(wheel, "sglang/srt/managers/scheduler.py", "Scheduler hit an exception")
    echo = _constant(wheel, "sglang/srt/entrypoints/engine.py", "Received sigquit")
    if exception == "not-enough-memory":
        exception = _message_not_enough_memory(wheel)
    scheduler_py = "/sgl-workspace/sglang/python/sglang/srt/managers/scheduler.py"
    runner_py = "/sgl-workspace/sglang/python/sglang/srt/model_executor/model_runner.py"
    frames = [
        f'  File "{scheduler_py}", line '
        f'{_line_of(wheel, "sglang/srt/managers/scheduler.py", "scheduler = Scheduler(")}, '
        "in run_scheduler_process",
        "    scheduler = Scheduler(",
        "                ^^^^^^^^^^",
        f'  File "{runner_py}", line '
        f'{_line_of(wheel, "sglang/srt/model_executor/model_runner.py", "def init_memory_pool")}'
        ", in init_memory_pool",
        "    self.token_to_kv_pool = MHATokenToKVPool(",
    ]
    lines = [
        f"[{TIME}] server_args=ServerArgs(model_path='/mnt/models/qwen3-8b', tp_size={tp_size})",
        f"[{TIME}{' TP0' if tp_size > 1 else ''}] Load weight begin. avail mem=78.50 GB",
    ]
    for rank in range(tp_size):
        prefix = f" TP{rank}" if tp_size > 1 else ""
        # format_exception's text ends with a newline; logging adds another.
        lines += [f"[{TIME}{prefix}] {hit}Traceback (most recent call last):", *frames,
                  exception, ""]
    lines.append(f"[{TIME}] {echo}")
    return "\n".join(lines) + "\n"
