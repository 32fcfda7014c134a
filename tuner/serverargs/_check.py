"""Values of flags checked against the table and our own limits, and turned into argv words.

The table says a flag's type and choices; ``LIMITS`` adds the numeric bounds of the flags we
search with ranges (SGLang's parser has none: it takes any int), and ``MANAGED`` the flags a
backend sets itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from tuner._hints import did_you_mean
from tuner.serverargs._table import Flag, table

__all__ = ["LIMITS", "MANAGED", "Limit", "check_value", "suggest", "to_argv"]


@dataclass(frozen=True)
class Limit:
    """Inclusive bounds of a numeric flag; ``special`` values are accepted outside them."""

    low: float
    high: float
    special: tuple[int, ...] = ()


LIMITS: dict[str, Limit] = {
    "tp_size": Limit(1, 64),
    "dp_size": Limit(1, 64),
    "mem_fraction_static": Limit(0.05, 0.99),
    "max_running_requests": Limit(1, 1 << 20),
    "max_total_tokens": Limit(1, 1 << 30),
    "chunked_prefill_size": Limit(1, 1 << 20, special=(-1,)),  # -1: chunking off
    "max_prefill_tokens": Limit(1, 1 << 22),
    "schedule_conservativeness": Limit(0.01, 10.0),
    # 0 is accepted only with disable_cuda_graph: a built-in constraint (tuner.spec).
    "cuda_graph_max_bs": Limit(0, 4096),
    "context_length": Limit(16, 1 << 22),
    "stream_interval": Limit(1, 64),
    "page_size": Limit(1, 256),
}

# Set by the backend for every trial; a spec may not search or fix them.
MANAGED = frozenset(
    {"model_path", "served_model_name", "host", "port", "enable_metrics", "tokenizer_path"}
)

# Free-text values reach a command line (as one word) and a manifest: one line, no flag-like
# start, and short.
_MAX_TEXT = 1000


def suggest(name: str, version: str | None = None) -> str:
    """A ' (did you mean X?)' hint for an unknown flag name, or ''."""
    return did_you_mean(name, table(version).flags)


def check_value(name: str, value: object, version: str | None = None) -> str | None:
    """Why ``value`` is not a valid value of flag ``name``, or None when it is.

    ``name`` must be a flag of the version's table.
    """
    flag = table(version).flags[name]
    if flag.kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if flag.choices is not None:
        if value not in flag.choices or isinstance(value, bool):
            shown = ", ".join(str(c) for c in flag.choices)
            if len(shown) > 400:
                shown = f"SGLang's {len(flag.choices)} choices (autotuner flags --search {name})"
            return f"must be one of {shown}"
        return None
    if flag.kind == "str":
        return _check_text(value)
    return _check_number(flag, value)


def _check_text(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if not value or value.startswith("-") or len(value) > _MAX_TEXT:
        return f"must be 1 to {_MAX_TEXT} characters, not starting with '-'"
    if any(ord(c) < 32 for c in value):
        return "must be one line of text"
    return None


def _check_number(flag: Flag, value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"must be a finite number ({flag.kind})"
    if flag.kind == "int" and value != int(value):
        return "must be an integer"
    limit = LIMITS.get(flag.name)
    if limit is None or value in limit.special:
        return None
    if not limit.low <= value <= limit.high:
        return f"must be between {limit.low:g} and {limit.high:g}"
    return None


def to_argv(config: Mapping[str, object], version: str | None = None) -> list[str]:
    """The launch_server words for a trial config, in a stable order.

    Switches appear only when true (SGLang's store-true flags cannot be turned off).
    """
    flags = table(version).flags
    argv: list[str] = []
    for name in sorted(config):
        value = config[name]
        flag = flags.get(name)
        option = flag.option if flag else "--" + name.replace("_", "-")
        if isinstance(value, bool):
            if value:
                argv.append(option)
            continue
        if isinstance(value, float) and value.is_integer() and flag and flag.kind == "int":
            value = int(value)
        argv += [option, str(value)]
    return argv
