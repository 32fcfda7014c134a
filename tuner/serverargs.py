"""SGLang ``launch_server`` flags the tuner may set: their types, limits and the argv they become.

A trial config is a dict of typed values keyed by the flag's dest name (dashes as underscores);
``to_argv`` is the one place that turns it into command-line words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tuner._hints import did_you_mean

__all__ = ["FLAGS", "MANAGED", "Flag", "check_value", "suggest", "to_argv"]


@dataclass(frozen=True)
class Flag:
    """One launch_server flag.

    Attributes:
        kind: ``int``, ``float``, ``bool`` (a store-true switch) or ``str``.
        low, high: inclusive numeric limits, when SGLang has them.
        choices: the accepted strings, for ``str`` flags with a fixed set.
        special: extra accepted values outside the limits (``-1`` disables chunked prefill).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    special: tuple[int, ...] = ()


FLAGS: dict[str, Flag] = {
    "tp_size": Flag("int", 1, 64),
    "dp_size": Flag("int", 1, 64),
    "mem_fraction_static": Flag("float", 0.05, 0.99),
    "max_running_requests": Flag("int", 1, 1 << 20),
    "max_total_tokens": Flag("int", 1, 1 << 30),
    "chunked_prefill_size": Flag("int", 1, 1 << 20, special=(-1,)),
    "max_prefill_tokens": Flag("int", 1, 1 << 22),
    "schedule_policy": Flag("str", choices=("fcfs", "lpm", "dfs-weight", "lof", "random")),
    "schedule_conservativeness": Flag("float", 0.01, 10.0),
    "cuda_graph_max_bs": Flag("int", 0, 4096),
    "disable_cuda_graph": Flag("bool"),
    "kv_cache_dtype": Flag("str", choices=("auto", "fp8_e4m3", "fp8_e5m2")),
    "enable_mixed_chunk": Flag("bool"),
    "disable_radix_cache": Flag("bool"),
    "context_length": Flag("int", 16, 1 << 22),
    "stream_interval": Flag("int", 1, 64),
    "page_size": Flag("int", 1, 256),
    "enable_torch_compile": Flag("bool"),
    "disable_overlap_schedule": Flag("bool"),
    "attention_backend": Flag(
        "str", choices=("fa3", "flashinfer", "triton", "torch_native", "trtllm_mha")
    ),
    "quantization": Flag("str", choices=("fp8", "w8a8_fp8", "awq", "gptq", "modelopt_fp8")),
}

# Set by the backend for every trial; a spec may not search or fix them.
MANAGED = frozenset({"model_path", "served_model_name", "host", "port", "enable_metrics"})


def suggest(name: str) -> str:
    """A ' (did you mean X?)' hint for an unknown flag name, or ''."""
    return did_you_mean(name, FLAGS)


def check_value(name: str, value: object) -> str | None:
    """Why ``value`` is not a valid value of flag ``name``, or None when it is."""
    flag = FLAGS[name]
    if flag.kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if flag.kind == "str":
        if not isinstance(value, str):
            return "must be a string"
        if flag.choices and value not in flag.choices:
            return f"must be one of {', '.join(flag.choices)}"
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number ({flag.kind})"
    if flag.kind == "int" and value != int(value):
        return "must be an integer"
    if value in flag.special:
        return None
    if (flag.low is not None and value < flag.low) or (
        flag.high is not None and value > flag.high
    ):
        return f"must be between {flag.low:g} and {flag.high:g}"
    return None


def to_argv(config: Mapping[str, object]) -> list[str]:
    """The launch_server words for a trial config, in a stable order.

    Switches appear only when true (SGLang's store-true flags cannot be turned off).
    """
    argv: list[str] = []
    for name in sorted(config):
        value = config[name]
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            if value:
                argv.append(option)
            continue
        if isinstance(value, float) and value.is_integer() and FLAGS[name].kind == "int":
            value = int(value)
        argv += [option, str(value)]
    return argv
