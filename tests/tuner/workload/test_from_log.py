"""``autotuner workload from-log`` on generated logs: fitted lengths, ladder, bad rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import twin
from tuner.cli import main
from tuner.spec import WorkloadSpec, spec_from_dict
from tuner.workload import PERCENTILES, dataset_lengths

# Lines of the generated CSV (the header is line 1) that are broken, and how.
BAD = {
    17: ("prompt_tokens", "many"),
    230: ("completion_tokens", "-3"),
    4001: ("timestamp", "yesterday"),
    8888: ("latency_ms", ""),
    9999: ("prompt_tokens", "12.5"),
}


def generate_log(path: Path, count: int = 10_000, seed: int = 7) -> dict[str, np.ndarray]:
    """A CSV request log: normal lengths, Poisson arrivals, latency growing with output."""
    rng = np.random.default_rng(seed)
    inputs = np.maximum(1, rng.normal(1500, 400, count)).astype(int)
    outputs = np.maximum(1, rng.normal(300, 80, count)).astype(int)
    starts = 1_780_000_000 + np.cumsum(rng.exponential(1 / 20, count))
    latencies = 0.2 + 0.01 * outputs + rng.exponential(0.3, count)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", "latency_ms", "prompt_tokens", "completion_tokens"])
        for i in range(count):
            row = {"timestamp": f"{starts[i]:.3f}", "latency_ms": f"{latencies[i] * 1000:.1f}",
                   "prompt_tokens": str(inputs[i]), "completion_tokens": str(outputs[i])}
            if i + 2 in BAD:
                column, value = BAD[i + 2]
                row[column] = value
            writer.writerow(row.values())
    good = np.array([i + 2 not in BAD for i in range(count)])
    return {"inputs": inputs[good], "outputs": outputs[good], "starts": starts[good],
            "latencies": latencies[good]}


def in_flight_percentiles(starts: np.ndarray, latencies: np.ndarray) -> list[float]:
    # Brute force, differently from the tool: count what is in flight at random moments.
    ends = np.sort(starts + latencies)
    moments = np.random.default_rng(0).uniform(starts.min(), ends.max(), 50_000)
    counts = np.searchsorted(np.sort(starts), moments, side="right") - np.searchsorted(
        ends, moments, side="right")
    return [float(v) for v in np.percentile(counts, (50, 90, 99))]


def test_a_10000_request_log_becomes_a_workload_with_its_length_percentiles(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = generate_log(tmp_path / "requests.csv")
    out = tmp_path / "out" / "workload.yaml"
    assert main(["workload", "from-log", str(tmp_path / "requests.csv"), "-o", str(out)]) == 0
    workload = WorkloadSpec.model_validate(yaml.safe_load(out.read_text())["workload"])

    # What trials would send: the scenario sampled as genai-bench samples it.
    [scenario] = workload.scenarios
    assert scenario.startswith("N(")
    inputs, outputs = twin.sample_lengths(scenario, 200_000, np.random.default_rng(1))
    for sent, logged in ((inputs, truth["inputs"]), (outputs, truth["outputs"])):
        for pct in PERCENTILES:
            assert np.percentile(sent, pct) == pytest.approx(np.percentile(logged, pct),
                                                             rel=0.02), pct

    # The ladder: requests in flight at the median, p90 and p99 of time.
    expected = in_flight_percentiles(truth["starts"], truth["latencies"])
    assert len(workload.concurrency) == 3
    for level, value in zip(workload.concurrency, expected, strict=True):
        assert abs(level - value) <= max(1, 0.05 * value)

    printed = capsys.readouterr().out
    assert "10,000 rows, 9,995 requests, 5 bad rows left out" in printed
    assert "line 17: prompt_tokens is 'many', not a number" in printed
    assert "line 230: completion_tokens is '-3', out of range" in printed
    assert "line 4001: timestamp is 'yesterday', not a time" in printed
    assert "line 8888: no latency_ms" in printed
    assert "line 9999: prompt_tokens is '12.5', not a whole number" in printed
    assert "input lengths (tokens; 9,995 requests)" in printed and "█" in printed
    listing = (tmp_path / "out" / "workload.bad-rows.txt").read_text().splitlines()
    assert [int(line.split(":")[0].split()[1]) for line in listing] == sorted(BAD)
    assert (tmp_path / "out" / "workload.png").stat().st_size > 1000  # matplotlib is here


def test_constant_and_uniform_logs_get_d_and_u_scenarios(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    for name, inputs, outputs, kind in (
            ("d", np.full(500, 512), np.full(500, 64), "D(512,64)"),
            ("u", rng.integers(100, 2000, 5000), rng.integers(10, 400, 5000), "U(")):
        log = tmp_path / f"{name}.jsonl"
        log.write_text("".join(json.dumps({"usage": {"prompt_tokens": int(a),
                                                     "completion_tokens": int(b)}}) + "\n"
                               for a, b in zip(inputs, outputs, strict=True)))
        out = tmp_path / f"{name}.yaml"
        assert main(["workload", "from-log", str(log), "-o", str(out)]) == 0
        workload = yaml.safe_load(out.read_text())["workload"]
        assert workload["scenarios"][0].startswith(kind)
        assert "concurrency" not in workload  # no times: the spec's default ladder


def test_a_log_with_prompts_becomes_a_dataset_counted_with_the_tokenizer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    words = "ships sail past the harbour light at dawn".split()
    rows = [{"prompt": " ".join(words[: 1 + i % 8] * (1 + i % 5)), "completion": "ok " * i}
            for i in range(1, 120)]
    rows[40] = {"prompt": "", "completion": "x"}  # an empty prompt is a bad row
    log = tmp_path / "chat.jsonl"
    log.write_text("".join(json.dumps(row) + "\n" for row in rows) + "{oops\n")
    out = tmp_path / "workload.yaml"
    assert main(["workload", "from-log", str(log), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "line 41: no prompt (or not text)" in printed and "line 120: not JSON" in printed

    data = yaml.safe_load(out.read_text())
    spec = spec_from_dict({"name": "x", "model": {"name": "Llama-3.1-8B-Instruct"},
                           "backend": {"kind": "estimate"}, "space": {"tp_size": [1]},
                           **data})
    assert spec.workload.scenarios == ["dataset"]
    good = [row["prompt"] for i, row in enumerate(rows) if i != 40]
    assert [json.loads(line)["prompt"] for line in
            (tmp_path / "workload.prompts.jsonl").read_text().splitlines()] == good
    # The estimator's lengths are the prompts counted as the server counts them.
    counter = twin.load_tokenizer(None)
    assert dataset_lengths(spec)[0].tolist() == [
        len(counter.encode_chat([{"role": "user", "content": p}])) for p in good]


def test_a_log_without_lengths_or_texts_is_refused(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "log.csv").write_text("user,when\nann,1\n")
    assert main(["workload", "from-log", str(tmp_path / "log.csv"), "-o",
                 str(tmp_path / "w.yaml")]) == 2
    assert "no input lengths" in capsys.readouterr().err
    assert not (tmp_path / "w.yaml").exists()
