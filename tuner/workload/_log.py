"""Reading a request log (CSV or JSON lines): each request's lengths and times, or why not."""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.exceptions import SpecError

__all__ = ["FIELDS", "RequestLog", "read_log"]

# What each field may be called in a log, first match wins (dots reach into JSON objects:
# an OpenAI response's usage). Names are compared case-insensitively.
FIELDS: dict[str, tuple[str, ...]] = {
    "input_tokens": ("input_tokens", "prompt_tokens", "num_input_tokens", "input_len",
                     "usage.prompt_tokens"),
    "output_tokens": ("output_tokens", "completion_tokens", "num_output_tokens", "output_len",
                      "usage.completion_tokens"),
    "prompt": ("prompt", "input", "input_text", "request"),
    "completion": ("completion", "output", "output_text", "response"),
    "start": ("timestamp", "start", "start_time", "started_at", "time", "created"),
    "end": ("end", "end_time", "ended_at", "finished_at"),
    "latency_s": ("latency_s", "latency", "e2e_latency", "duration_s", "duration"),
    "latency_ms": ("latency_ms", "e2e_latency_ms", "duration_ms"),
}
# Epoch numbers above this are milliseconds (1e11 s is the year 5138).
_MS_EPOCH = 1e11


@dataclass
class RequestLog:
    """The good requests of a log, column by column, and every bad row.

    Attributes:
        inputs / outputs: token counts per good request (None where the log has text to
            count instead; :func:`tuner.workload.from_log` counts it).
        prompts / completions: the texts, where the log has them.
        starts / latencies: seconds since the epoch, and seconds; empty without them.
        bad: ``(line, reason)`` per row left out.
        fields: the log's name for each field found.
    """

    inputs: list[int | None] = field(default_factory=list)
    outputs: list[int | None] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    rows: int = 0


def read_log(path: Path, names: Mapping[str, str] | None = None) -> RequestLog:
    """Read a CSV (with a header) or JSON-lines request log.

    Args:
        names: the log's name for a field (``input_tokens``, ``prompt``, ``start``, ...)
            where it is none of :data:`FIELDS`' aliases.

    Raises:
        SpecError: the file cannot be read, or has neither input lengths nor prompts.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise SpecError(f"{path} is not UTF-8 text (byte {e.start})") from e
    rows = _jsonl_rows(text) if _is_jsonl(path, text) else _csv_rows(text)
    log = RequestLog()
    first = True
    for line, row in rows:
        log.rows += 1
        if isinstance(row, str):
            log.bad.append((line, row))
            continue
        if first:
            log.fields = _match_fields(row.keys(), names or {})
            _require(log.fields, path)
            first = False
        try:
            _add(log, row)
        except ValueError as e:
            log.bad.append((line, str(e)))
    if first:
        raise SpecError(f"{path} has no requests (no row could be read)")
    return log


def _is_jsonl(path: Path, text: str) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return True
    return path.suffix.lower() != ".csv" and text.lstrip().startswith("{")


def _jsonl_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            yield line, f"not JSON ({e.msg})"
            continue
        yield line, row if isinstance(row, dict) else "not a JSON object"


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        if None in row:
            yield reader.line_num, "more values than columns"
        elif any(value is None for value in row.values()):
            yield reader.line_num, "fewer values than columns"
        else:
            yield reader.line_num, {k: v for k, v in row.items() if v != ""}


def _match_fields(keys: Any, names: Mapping[str, str]) -> dict[str, str]:
    flat = {k.lower(): k for k in keys}
    found = {}
    for name, aliases in FIELDS.items():
        if name in names:
            found[name] = names[name]
            continue
        for alias in aliases:
            head = alias.split(".")[0]
            if head in flat:
                found[name] = alias.replace(head, flat[head], 1)
                break
    return found


def _require(fields: Mapping[str, str], path: Path) -> None:
    if "input_tokens" not in fields and "prompt" not in fields:
        raise SpecError(
            f"{path}: no input lengths: name a column or field input_tokens (or "
            f"{', '.join(FIELDS['input_tokens'][1:])}) or prompt, or pass --input-field"
        )
    if "output_tokens" not in fields and "completion" not in fields:
        raise SpecError(
            f"{path}: no output lengths: name a column or field output_tokens (or "
            f"{', '.join(FIELDS['output_tokens'][1:])}) or completion, or pass --output-field"
        )


def _get(row: Mapping[str, Any], name: str) -> Any:
    value: Any = row
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _add(log: RequestLog, row: Mapping[str, Any]) -> None:
    """Append one row, or raise ValueError with the reason (nothing is appended then)."""
    f = log.fields
    values: dict[str, Any] = {}
    if "prompt" in f:
        # Every prompt of a log that has them: they become the workload's prompt file.
        prompt = _get(row, f["prompt"])
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"no {f['prompt']} (or not text)")
        values["prompt"] = prompt
    for name, text_name in (("input_tokens", "prompt"), ("output_tokens", "completion")):
        text = _get(row, f[text_name]) if text_name in f else None
        if isinstance(text, str):
            values[text_name] = text
        if name in f and _get(row, f[name]) is not None:
            values[name] = _count(_get(row, f[name]), f[name], least=1)
        elif isinstance(text, str):
            values[name] = None  # counted from the text by the caller
        else:
            raise ValueError(f"no {f.get(name) or f.get(text_name)}")
    start = latency = None
    if "start" in f:
        start = _time(_get(row, f["start"]), f["start"])
        if "latency_ms" in f:
            latency = _number(_get(row, f["latency_ms"]), f["latency_ms"], _positive) / 1000
        elif "latency_s" in f:
            latency = _number(_get(row, f["latency_s"]), f["latency_s"], _positive)
        elif "end" in f:
            latency = _time(_get(row, f["end"]), f["end"]) - start
            if latency < 0:
                raise ValueError(f"{f['end']} is before {f['start']}")
    log.inputs.append(values["input_tokens"])
    log.outputs.append(values["output_tokens"])
    for text_name, column in (("prompt", log.prompts), ("completion", log.completions)):
        if text_name in f:
            column.append(values.get(text_name) or "")
    if start is not None:
        log.starts.append(start)
    if latency is not None:
        log.latencies.append(latency)


def _count(value: Any, name: str, least: int) -> int:
    number = _number(value, name, lambda x: x >= least)
    if number != int(number):
        raise ValueError(f"{name} is {value!r}, not a whole number")
    return int(number)


def _positive(x: float) -> bool:
    return x >= 0


def _number(value: Any, name: str, ok: Callable[[float], bool]) -> float:
    if value is None or isinstance(value, bool):
        raise ValueError(f"no {name}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is {value!r}, not a number") from None
    if not math.isfinite(number) or not ok(number):
        raise ValueError(f"{name} is {value!r}, out of range")
    return number


def _time(value: Any, name: str) -> float:
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            try:
                moment = datetime.datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{name} is {value!r}, not a time") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.UTC)
            return moment.timestamp()
    else:
        number = _number(value, name, _positive)
    return number / 1000 if number > _MS_EPOCH else number

