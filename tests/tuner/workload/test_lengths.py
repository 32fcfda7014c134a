"""The estimator's workload for a prompt file is the file's token-length distribution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

import twin
from tuner import backends
from tuner.spec import spec_from_dict
from tuner.workload import dataset_lengths

WORDS = "a quick grey fox jumps over the lazy dog near seven green hills".split()


def prompts(count: int) -> list[str]:
    rng = np.random.default_rng(3)
    return [" ".join(rng.choice(WORDS, size=int(n))) for n in rng.integers(1, 400, count)]


@pytest.fixture
def spec(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "p.txt").write_text("\n".join(prompts(60)) + "\n")
    return spec_from_dict({
        "name": "x", "model": {"name": "Llama-3.1-8B-Instruct"},
        "backend": {"kind": "estimate", "gpu": "H100"}, "space": {"tp_size": [1]},
        "workload": {"dataset": {"path": str(tmp_path / "p.txt")}, "concurrency": [8],
                     "max_requests_per_level": 3000}})


def test_the_lengths_are_the_files_counted_as_genai_bench_and_sglang_count(spec) -> None:  # type: ignore[no-untyped-def]
    # An independent count: transformers with the chat template, as genai-bench counts a
    # prompt's prefill tokens (and SGLang its usage.prompt_tokens).
    reference = AutoTokenizer.from_pretrained(str(twin.BUNDLED_TOKENIZER))
    expected = [len(reference.apply_chat_template([{"role": "user", "content": p}],
                                                  add_generation_prompt=True,
                                                  tokenize=True)["input_ids"])
                for p in prompts(60)]
    inputs, outputs = dataset_lengths(spec)
    assert inputs.tolist() == expected
    assert 1 <= outputs.min() and outputs.max() <= 512  # the twin's model stops by itself


def test_the_estimator_draws_its_requests_from_the_files_lengths(spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backend = backends.make(spec, study_id="s", workdir=tmp_path)
    result = twin.estimate(
        backend.deploy({"tp_size": 1}, trial_id="t").config, gpu="H100", scenario="dataset",
        concurrency=8, max_requests=3000, lengths=dataset_lengths(spec), ignore_eos=False)
    stats = result["aggregated_metrics"]["stats"]["num_input_tokens"]
    inputs, _ = dataset_lengths(spec)
    # 3000 draws from 60 prompts: every prompt is drawn, so the extremes are the file's, and
    # the mean and quartiles are the file's within sampling noise.
    assert stats["min"] == inputs.min() and stats["max"] == inputs.max()
    assert stats["mean"] == pytest.approx(inputs.mean(), rel=0.03)
    for pct in (25, 50, 75, 90):
        assert stats[f"p{pct}"] == pytest.approx(np.percentile(inputs, pct), rel=0.06)
    # The estimate backend (and so the pre-screen) uses the same draw.
    level = backend.measure(backend.deploy({"tp_size": 1}, trial_id="t"), scenario="dataset",
                            concurrency=8, out_dir=tmp_path)
    assert level.input_throughput / level.requests_per_second == pytest.approx(
        stats["mean"], rel=1e-6)
    # A D scenario beside the dataset keeps its own lengths.
    shaped = backend.measure(backend.deploy({"tp_size": 1}, trial_id="t"),
                             scenario="D(100,20)", concurrency=8, out_dir=tmp_path)
    assert shaped.input_throughput / shaped.requests_per_second == pytest.approx(100)
