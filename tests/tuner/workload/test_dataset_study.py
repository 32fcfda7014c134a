"""A study on the twin with a prompt file, end to end: pre-screen, genai-bench, the twin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import twin
from tuner import run_study
from tuner.spec import spec_from_dict
from tuner.store import StudyState, TrialState, open_store

pytestmark = pytest.mark.slow

WORDS = "the tide rolls over grey stones while gulls argue about bread and weather".split()


def write_prompts(path: Path, count: int = 40) -> list[str]:
    prompts = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(5 + 7 * i)) for i in
               range(count)]
    path.write_text("".join(json.dumps({"id": i, "text": p}) + "\n"
                            for i, p in enumerate(prompts)))
    return prompts


def test_a_twin_study_with_a_prompt_file_serves_the_files_prompts(
        ray_pool: int, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    spec = spec_from_dict({
        "name": "dataset-e2e",
        "model": {"name": "Llama-3.1-8B-Instruct"},
        "backend": {"kind": "twin", "gpu": "H100", "gpus": 1, "time_scale": 8,
                    "startup_timeout_s": 60},
        "space": {"max_running_requests": [16]},
        "workload": {"dataset": {"path": str(tmp_path / "prompts.jsonl"), "field": "text"},
                     "concurrency": [2], "max_requests_per_level": 8,
                     "max_seconds_per_level": 60},
        "objective": {"slo": {"tpot_p99_ms": 1000, "ttft_p99_ms": 10000}},
        "search": {"algorithm": "grid", "confirm": {"top_k": 0}},
        "trial_timeout_s": 300,
    })
    assert spec.workload.scenarios == ["dataset"]
    result = run_study(spec, store=open_store(tmp_path / "s.db"), workdir=tmp_path / "work")

    assert result.study.state == StudyState.COMPLETED, result.study.message
    [trial] = result.trials
    assert trial.state == TrialState.COMPLETED, trial.message
    assert trial.score is not None and trial.score > 0
    assert [level.scenario for level in trial.levels] == ["dataset"]

    # What genai-bench sent is what the file holds: every request's prompt length (the
    # server's usage, chat template included) is one of the file's, and every output stops
    # where the twin's model stops for that prompt (dataset mode sends no max_tokens).
    inputs, outputs = twin.dataset_lengths(prompts)
    natural = dict(zip(inputs.tolist(), outputs.tolist(), strict=True))
    [found] = list((tmp_path / "work").rglob("*_num_concurrency_2_time_*s.json"))
    requests = [r for r in json.loads(found.read_text())["individual_request_metrics"]
                if r.get("error_code") is None]
    assert len(requests) >= 6
    for request in requests:
        assert request["num_input_tokens"] in natural
        assert request["num_output_tokens"] == natural[request["num_input_tokens"]]
    # genai-bench read the tuner's copy in the level's folder, not the user's path.
    metadata = json.loads((found.parent / "experiment_metadata.json").read_text())
    assert Path(metadata["dataset_path"]).parent == found.parent.parent
    assert json.loads(Path(metadata["dataset_path"]).read_text()) == prompts
