"""Reading why SGLang died from its log, against logs composed from the pinned wheel's source."""

from __future__ import annotations

from typing import Any

import pytest

from tuner.backends import _sglang_log

from .sglang_logs import TORCH_OOM, scheduler_death_log


@pytest.mark.parametrize("tp_size", [1, 2])
def test_the_scheduler_oom_wins_over_the_launchers_sigquit_echo(
    sglang_wheel: Any, tp_size: int
) -> None:
    log = scheduler_death_log(sglang_wheel, tp_size=tp_size)
    assert "child failed" in log.splitlines()[-1]  # what the old "last error line" chose
    assert _sglang_log.explain(log) == TORCH_OOM
    assert _sglang_log.failure_reason(log) == "oom"


def test_sglangs_own_empty_kv_pool_error_is_an_oom(sglang_wheel: Any) -> None:
    log = scheduler_death_log(sglang_wheel, exception="not-enough-memory")
    assert _sglang_log.explain(log).startswith("RuntimeError: Not enough memory.")
    assert _sglang_log.failure_reason(log) == "oom"


def test_another_exception_is_named_and_is_not_an_oom(sglang_wheel: Any) -> None:
    final = "AssertionError: chunked_prefill_size must be divisible by page_size"
    log = scheduler_death_log(sglang_wheel, exception=final)
    assert _sglang_log.explain(log) == final
    assert _sglang_log.failure_reason(log) == "startup"


def test_a_log_tail_without_the_traceback_header_still_finds_the_oom(sglang_wheel: Any) -> None:
    # A termination message from the kubelet holds only the last 2048 bytes of the log.
    tail = scheduler_death_log(sglang_wheel)[-600:]
    assert "Traceback" not in tail
    assert _sglang_log.explain(tail) == TORCH_OOM


def test_without_a_traceback_the_last_cause_beats_the_echo() -> None:
    log = ("[t] Load weight begin.\n[t] ValueError: Unsupported architecture Foo\n"
           "[t] Received sigquit from a child process. It usually means the child failed.\n")
    assert _sglang_log.explain(log) == "[t] ValueError: Unsupported architecture Foo"
    assert _sglang_log.explain("only output\n") == "only output"
    assert _sglang_log.explain("") == "(no output)"
