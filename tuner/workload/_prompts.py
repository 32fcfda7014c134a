"""Reading a ``workload.dataset`` prompt file: every prompt, or every bad row by line."""

from __future__ import annotations

import csv
import functools
import io
import json
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.exceptions import SpecError

if TYPE_CHECKING:
    from tuner.spec import WorkloadSpec
    from tuner.spec._dataset import DatasetSpec

__all__ = ["MAX_DATASET_BYTES", "check_dataset", "read_prompts", "write_for_genai_bench"]

# A prompt file is read whole into every trial process: far above any real prompt set,
# far below what would exhaust a worker's memory.
MAX_DATASET_BYTES = 1 << 30
# Bad rows named in an error; the count covers them all.
_SHOWN = 5


def read_prompts(dataset: DatasetSpec) -> tuple[str, ...]:
    """The prompts of a dataset file, in file order.

    txt: each line, stripped, blank lines skipped (as genai-bench reads txt). csv: the named
    column of each row. jsonl: the named field of each line. json: a list of strings, or of
    objects with the named field.

    Raises:
        SpecError: naming ``workload.dataset.path`` (missing, unreadable, too large, empty)
            or ``workload.dataset.field``, with every bad row counted and the first named by
            line number and reason.
    """
    path = Path(dataset.path)
    try:
        info = path.stat()
    except OSError as e:
        raise _error("path", f"cannot read {path}: {e.strerror}; check the path") from e
    if not stat.S_ISREG(info.st_mode):
        raise _error("path", f"{path} is not a regular file")
    if info.st_size > MAX_DATASET_BYTES:
        raise _error("path", f"{path} is larger than {MAX_DATASET_BYTES >> 20} MiB")
    # Cached by identity and version of the file: the pre-screen and each level ask again.
    return _read(str(path), info.st_mtime_ns, info.st_size, dataset.file_format, dataset.field)


def check_dataset(workload: WorkloadSpec) -> None:
    """Read the workload's dataset, if any, so a bad file fails before the first trial.

    Raises:
        SpecError: see :func:`read_prompts`.
    """
    if workload.dataset is not None:
        read_prompts(workload.dataset)


def write_for_genai_bench(dataset: DatasetSpec, folder: Path) -> Path:
    """Write the prompts as the JSON list genai-bench's ``--dataset-path`` reads; its path.

    genai-bench then gets a file the tuner wrote, under the level's own folder, never the
    user's path: the same prompts whatever the source format, and nothing on its command
    line that a spec chose.
    """
    target = folder / "prompts.json"
    target.write_text(json.dumps(list(read_prompts(dataset)), ensure_ascii=False))
    return target


@functools.lru_cache(maxsize=4)
def _read(
    path: str, mtime_ns: int, size: int, fmt: str, field: str | None
) -> tuple[str, ...]:
    del mtime_ns, size  # the cache key only
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as e:
        raise _error("path", f"cannot read {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise _error("path", f"{path} is not UTF-8 text (byte {e.start})") from e
    prompts: list[str] = []
    bad: list[str] = []
    if fmt == "txt":
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
    elif fmt == "csv":
        _csv_rows(text, field or "", prompts, bad)
    elif fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                _take(_json_line(line), field, f"line {number}", prompts, bad)
    else:
        _json_list(text, field, prompts, bad)
    if bad:
        shown = "; ".join(bad[:_SHOWN])
        more = f" (and {len(bad) - _SHOWN} more)" if len(bad) > _SHOWN else ""
        raise _error("path", f"{len(bad)} bad rows in {path}: {shown}{more}")
    if not prompts:
        raise _error("path", f"{path} holds no prompts")
    return tuple(prompts)


def _csv_rows(text: str, column: str, prompts: list[str], bad: list[str]) -> None:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if column not in header:
        raise _error("field", f"no column '{column}'; the columns are {', '.join(header)}")
    for row in reader:
        where = f"line {reader.line_num}"  # the row's last line: a quoted prompt may span
        value = row.get(column)
        if None in row:
            bad.append(f"{where}: more values than columns")
        elif value is None:
            bad.append(f"{where}: fewer values than columns")
        elif not value.strip():
            bad.append(f"{where}: '{column}' is empty")
        else:
            prompts.append(value)


def _json_line(line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        return _Invalid(f"not JSON ({e.msg})")


def _json_list(
    text: str, field: str | None, prompts: list[str], bad: list[str]
) -> None:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise _error("path", f"not JSON: {e.msg} at line {e.lineno}") from e
    if not isinstance(items, list):
        raise _error("path", "a json dataset is a list of prompts (or of objects)")
    for number, item in enumerate(items, start=1):
        _take(item, field, f"item {number}", prompts, bad)


class _Invalid:
    def __init__(self, why: str) -> None:
        self.why = why


def _take(
    item: object,
    field: str | None,
    where: str,
    prompts: list[str],
    bad: list[str],
) -> None:
    if isinstance(item, _Invalid):
        bad.append(f"{where}: {item.why}")
        return
    if field is not None:
        if not isinstance(item, dict):
            bad.append(f"{where}: not an object with '{field}'")
            return
        if field not in item:
            bad.append(f"{where}: no field '{field}'")
            return
        item = item[field]
    if not isinstance(item, str):
        bad.append(f"{where}: the prompt is {type(item).__name__}, not text")
    elif not item.strip():
        bad.append(f"{where}: the prompt is empty")
    else:
        prompts.append(item)


def _error(part: str, reason: str) -> SpecError:
    where = f"workload.dataset.{part}"
    return SpecError(f"{where}: {reason}", [(where, reason)])

