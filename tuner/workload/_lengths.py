"""The token lengths of a study's prompt file, counted with the study's tokenizer."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tuner.workload._prompts import read_prompts

if TYPE_CHECKING:
    from tuner.spec import StudySpec

__all__ = ["dataset_lengths", "tokenizer_dir"]


def tokenizer_dir(spec: StudySpec) -> str | None:
    """The local tokenizer directory the study's server counts prompts with: ``model.tokenizer``
    or the model directory, whichever holds a ``tokenizer.json``; None for the twin's bundled
    one (a hub id is never downloaded: the bundled tokenizer stands in for it)."""
    for candidate in (spec.model.tokenizer, spec.model.model_path):
        if candidate and (Path(candidate) / "tokenizer.json").is_file():
            return candidate
    return None


def dataset_lengths(spec: StudySpec) -> tuple[np.ndarray, np.ndarray]:
    """(input, output) token lengths of each prompt of ``workload.dataset``, as the twin gives
    them to genai-bench's dataset-mode requests (see :func:`twin.dataset_lengths`).

    Raises:
        SpecError: the dataset cannot be read (see :func:`read_prompts`).
    """
    assert spec.workload.dataset is not None
    return _lengths(read_prompts(spec.workload.dataset), tokenizer_dir(spec))


@functools.lru_cache(maxsize=4)
def _lengths(prompts: tuple[str, ...], tokenizer: str | None) -> tuple[np.ndarray, np.ndarray]:
    # Cached: the pre-screen estimates hundreds of configs over the same prompts.
    import twin

    inputs, outputs = twin.dataset_lengths(prompts, tokenizer)
    inputs.setflags(write=False)
    outputs.setflags(write=False)
    return inputs, outputs
