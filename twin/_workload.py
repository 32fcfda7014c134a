"""Request lengths: genai-bench's scenarios, SGLang bench_serving's random dataset, and the
lengths of a prompt dataset."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Sequence

import numpy as np

from twin import _tokenizer

# Most requests one estimate simulates. The estimator holds every request: about 0.6 KB and
# 7 us of CPU each on the 2-core box (1,000,000 prompts: 0.6 GB, 7 s). A count past this is a
# typing mistake, not a workload, and would exhaust memory before any answer.
MAX_REQUESTS = 1_000_000
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


def bench_serving_random_lengths(
    input_len: int,
    output_len: int,
    num_prompts: int,
    range_ratio: float = 0.0,
    seed: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """The (input, output) token lengths of SGLang's ``bench_serving --dataset-name random``.

    ``bench_serving`` seeds NumPy's global generator with ``--seed`` (default 1) and draws the
    prompts' input lengths, then their output lengths, uniformly from
    ``[max(int(len * ratio), 1), len]`` and ``[int(len * ratio), len]`` (0.5.x
    ``sample_random_requests``, ``--random-range-ratio`` default 0). The draw is the same on
    every machine, so these are the very lengths of a published run: its "Total input
    tokens" and "Total generated tokens" lines check them. Give the result to
    :func:`twin.estimate` with ``in_order=True``, as ``bench_serving`` sends each prompt once,
    in this order.

    An output length of 0 (about one prompt in ``output_len``) is raised to 1: SGLang answers
    ``max_new_tokens: 0`` after the prefill, so the request costs what a one-token one does.

    Args:
        input_len: ``--random-input-len``.
        output_len: ``--random-output-len``.
        num_prompts: ``--num-prompts``.
        range_ratio: ``--random-range-ratio``, in [0, 1].
        seed: ``--seed``.

    Returns:
        Two integer arrays of ``num_prompts`` lengths, in the order they are sent.

    Raises:
        ValueError: A length or count is below 1, the count above :data:`MAX_REQUESTS`, or
            the ratio outside [0, 1].
    """
    if (
        min(input_len, output_len, num_prompts) < 1
        or num_prompts > MAX_REQUESTS
        or not 0.0 <= range_ratio <= 1.0
    ):
        raise ValueError(
            "bench_serving random dataset: input_len, output_len and num_prompts must be >= 1, "
            f"num_prompts at most {MAX_REQUESTS:,}, and range_ratio in [0, 1] (got "
            f"{input_len}, {output_len}, {num_prompts}, {range_ratio})"
        )
    # The legacy generator: np.random.seed(s) then np.random.randint is this stream.
    legacy = np.random.RandomState(seed)
    inputs = legacy.randint(max(int(input_len * range_ratio), 1), input_len + 1, num_prompts)
    outputs = legacy.randint(int(output_len * range_ratio), output_len + 1, num_prompts)
    return inputs.astype(np.int64), np.maximum(outputs, 1).astype(np.int64)


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
