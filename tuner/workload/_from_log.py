"""``workload from-log``: a request log in, a workload YAML (and its prompt file) out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from tuner.exceptions import SpecError
from tuner.workload._fit import (
    PERCENTILES,
    Fit,
    concurrency_percentiles,
    fit_scenario,
)
from tuner.workload._log import RequestLog, read_log
from tuner.workload._summary import write_png

__all__ = ["FromLog", "from_log"]

# The ladder's percentiles of requests in flight: the typical load, the busy hours, the peaks.
LADDER_PERCENTILES = (50, 90, 99)


@dataclass
class FromLog:
    """What :func:`from_log` read and wrote.

    Attributes:
        log: the requests read and the bad rows.
        inputs / outputs: token lengths of the good requests.
        workload: the ``workload`` mapping written.
        fit: the fitted scenario (None when the workload is the log's prompts).
        dataset: the prompt file written, if any.
        ladder_from: how the ladder was chosen.
        png: the length histograms as an image.
        expected: the :data:`PERCENTILES` of the workload's input and output lengths as
            trials will send them (output None for a dataset: the server's own stops).
    """

    log: RequestLog
    inputs: np.ndarray
    outputs: np.ndarray
    workload: dict[str, object]
    fit: Fit | None
    dataset: Path | None
    ladder_from: str
    written: Path
    png: Path
    expected: dict[str, list[float] | None]


def from_log(
    log_path: Path,
    out: Path,
    *,
    names: Mapping[str, str] | None = None,
    tokenizer: str | None = None,
    use_prompts: bool = True,
) -> FromLog:
    """Read a request log and write a workload fitted to it.

    With prompts in the log (and ``use_prompts``), the workload is those prompts as a
    dataset, written next to ``out``; else the D, N or U scenario whose length percentiles
    are closest to the log's. The ladder is the 50th, 90th and 99th percentiles of the
    requests in flight when the log has start times and latencies (or end times).

    Args:
        names: the log's names of fields (see :data:`tuner.workload._log.FIELDS`).
        tokenizer: a local tokenizer directory to count prompts and completions with;
            default: the twin's bundled one (nothing is downloaded).

    Raises:
        SpecError: the log cannot be read or has no good request.
    """
    log = read_log(log_path, names)
    if not log.inputs:
        shown = "; ".join(f"line {n}: {why}" for n, why in log.bad[:5])
        raise SpecError(f"{log_path}: none of its {log.rows:,} rows is a request ({shown})")
    inputs, outputs = _count_lengths(log, tokenizer)
    out.parent.mkdir(parents=True, exist_ok=True)
    workload: dict[str, object] = {}
    fit = dataset = None
    if use_prompts and "prompt" in log.fields:
        dataset = out.with_name(out.stem + ".prompts.jsonl")
        dataset.write_text("".join(json.dumps({"prompt": p}, ensure_ascii=False) + "\n"
                                   for p in log.prompts))
        workload["dataset"] = {"path": str(dataset.resolve()), "field": "prompt"}
        workload["scenarios"] = ["dataset"]
        import twin

        counted, _ = twin.dataset_lengths(log.prompts, tokenizer)
        expected: dict[str, list[float] | None] = {
            "input": percentile_table(counted), "output": None}
    else:
        fit = fit_scenario(inputs, outputs)
        workload["scenarios"] = [fit.scenario]
        expected = {"input": fit.percentiles["input"], "output": fit.percentiles["output"]}
    ladder_from = _ladder(log, workload)
    _check(workload)
    header = (
        f"# written by `autotuner workload from-log {log_path.name}`: {len(inputs):,} "
        f"requests ({len(log.bad):,} bad rows left out). Copy `workload` into a study spec.\n"
    )
    out.write_text(header + yaml.safe_dump({"workload": workload}, sort_keys=False))
    png = write_png(out.with_suffix(".png"), inputs.tolist(), outputs.tolist())
    return FromLog(
        log, inputs, outputs, workload, fit, dataset, ladder_from, out, png, expected
    )


def _count_lengths(log: RequestLog, tokenizer: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Token counts of every good request: the log's, or its texts counted (prompts with the
    chat template, as the server counts ``usage.prompt_tokens``)."""
    if all(v is not None for v in log.inputs) and all(v is not None for v in log.outputs):
        return np.asarray(log.inputs, dtype=np.int64), np.asarray(log.outputs, dtype=np.int64)
    import twin

    counter = twin.load_tokenizer(Path(tokenizer) if tokenizer else None)
    prompts = log.prompts or [""] * len(log.inputs)
    completions = log.completions or [""] * len(log.outputs)
    inputs = [
        n if n is not None else len(counter.encode_chat([{"role": "user", "content": p}]))
        for n, p in zip(log.inputs, prompts, strict=True)
    ]
    outputs = [
        n if n is not None else len(counter.encode(c))
        for n, c in zip(log.outputs, completions, strict=True)
    ]
    return np.asarray(inputs, dtype=np.int64), np.asarray(outputs, dtype=np.int64)


def _ladder(log: RequestLog, workload: dict[str, object]) -> str:
    good = len(log.inputs)
    if len(log.starts) == good and len(log.latencies) == good:
        levels = concurrency_percentiles(log.starts, log.latencies, LADDER_PERCENTILES)
        workload["concurrency"] = sorted(set(levels))
        return (
            "requests in flight at the "
            + "/".join(f"p{p}" for p in LADDER_PERCENTILES)
            + " of time: "
            + ", ".join(str(level) for level in levels)
        )
    if log.starts:
        return "the default ladder: the log has start times but no latencies or end times"
    return "the default ladder: the log has no start times"


def _check(workload: dict[str, object]) -> None:
    from tuner.spec import WorkloadSpec

    WorkloadSpec.model_validate(workload)  # what a spec will accept, before it is written


def percentile_table(values: np.ndarray) -> list[float]:
    """The :data:`PERCENTILES` of lengths, as the fit judges them."""
    return [float(v) for v in np.percentile(values, PERCENTILES)]
