"""genai-bench traffic: scenario parsing and sampling, and the lengths of a prompt dataset."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Sequence

import numpy as np

from twin import _tokenizer

# A max_tokens no natural stop reaches: the stop is then the model's own.
_UNCAPPED = 1 << 30

_PATTERNS = {
    "D": re.compile(r"^D\((\d+),(\d+)\)$"),
    "N": re.compile(r"^N\((\d+),(\d+)\)/\((\d+),(\d+)\)$"),
    "U2": re.compile(r"^U\((\d+),(\d+)\)/\((\d+),(\d+)\)$"),
    "U1": re.compile(r"^U\((\d+),(\d+)\)$"),
}


def _parse(scenario: str) -> tuple[str, list[int]]:
    text = scenario.replace(" ", "")
    for kind, pattern in _PATTERNS.items():
        match = pattern.match(text)
        if match:
            return kind, [int(v) for v in match.groups()]
    raise ValueError(
        f"--scenario: {scenario!r} is not a genai-bench scenario; use D(in,out), "
        "N(mean_in,std_in)/(mean_out,std_out), U(min_in,max_in)/(min_out,max_out) or "
        "U(max_in,max_out)"
    )


def sample_lengths(
    scenario: str, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Samples (input, output) token lengths the way genai-bench 0.0.5 does.

    Args:
        scenario: ``D(in,out)``, ``N(mean_in,std_in)/(mean_out,std_out)``,
            ``U(min_in,max_in)/(min_out,max_out)`` or ``U(max_in,max_out)``.
        count: Number of requests.
        rng: Random generator.

    Returns:
        Two integer arrays of length ``count``.

    Raises:
        ValueError: The scenario does not parse.
    """
    kind, values = _parse(scenario)
    if kind == "D":
        return np.full(count, values[0]), np.full(count, values[1])
    if kind == "N":
        inputs = rng.normal(values[0], values[1], count)
        outputs = rng.normal(values[2], values[3], count)
    else:
        low_in, high_in, low_out, high_out = (
            values if kind == "U2" else (1, values[0], 1, values[1])
        )
        inputs = rng.uniform(low_in, high_in, count)
        outputs = rng.uniform(low_out, high_out, count)
    return (np.maximum(1, inputs.astype(np.int64)), np.maximum(2, outputs.astype(np.int64)))


def dataset_lengths(
    prompts: Sequence[str], tokenizer_dir: str | pathlib.Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The (input, output) token lengths the twin gives genai-bench's dataset-mode requests.

    genai-bench's dataset mode sends each prompt as one user message, with no ``max_tokens``
    and ``ignore_eos`` false. The twin counts the prompt after the chat template (as SGLang
    counts ``usage.prompt_tokens``) and stops where its simulated model stops by itself
    (:func:`twin._tokenizer.natural_length`, before any context limit, which the estimator
    applies per configuration).

    Args:
        prompts: The prompts, one per request.
        tokenizer_dir: A tokenizer directory (with ``tokenizer.json``); None or a directory
            without one: the bundled tokenizer. Nothing is downloaded.

    Returns:
        Two integer arrays, one entry per prompt.
    """
    directory = pathlib.Path(tokenizer_dir) if tokenizer_dir is not None else None
    tokenizer = _tokenizer.load_tokenizer(directory)
    inputs, outputs = [], []
    for prompt in prompts:
        ids = tokenizer.encode_chat([{"role": "user", "content": prompt}])
        inputs.append(len(ids))
        outputs.append(_tokenizer.natural_length(ids, _UNCAPPED))
    return np.asarray(inputs, dtype=np.int64), np.asarray(outputs, dtype=np.int64)
