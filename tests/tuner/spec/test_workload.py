"""``workload``: weighted scenario entries, the dataset, and plain lists as they always were."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tuner.exceptions import SpecError
from tuner.spec import StudySpec, load_spec, spec_from_dict


def spec(workload: dict[str, Any]) -> StudySpec:
    return spec_from_dict({"name": "x", "model": {"name": "Llama-3.1-8B-Instruct"},
                           "space": {"tp_size": [1]}, "workload": workload})


def errors(workload: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        spec(workload)
    return caught.value.errors


def test_a_plain_list_is_unchanged_and_unweighted() -> None:
    workload = spec({"scenarios": ["D(1024,256)", "N(480,240)/(300,150)"]}).workload
    assert workload.scenarios == ["D(1024,256)", "N(480,240)/(300,150)"]
    assert workload.weights is None and workload.dataset is None
    assert workload.weight("D(1024,256)") == workload.weight("N(480,240)/(300,150)") == 1.0
    assert spec({}).workload.scenarios == ["D(1024,256)"]


def test_weighted_entries_become_scenarios_and_weights_and_round_trip() -> None:
    workload = spec({"scenarios": ["D(100,10)", {"scenario": "D(2000,200)", "weight": 3}]}
                    ).workload
    assert workload.scenarios == ["D(100,10)", "D(2000,200)"]
    assert workload.weights == {"D(100,10)": 1.0, "D(2000,200)": 3.0}
    assert workload.weight("D(2000, 200)") == 3.0  # as genai-bench may space it
    again = spec(workload.model_dump(mode="json")).workload
    assert again == workload


def test_bad_weights_name_the_entry() -> None:
    assert errors({"scenarios": [{"scenario": "D(1,1)", "weight": 0}]}) == [
        ("workload", "scenarios.0.weight: Input should be greater than 0")]
    assert errors({"scenarios": [{"scenario": "D(1,1)", "weight": 2},
                                 {"scenario": "D(1,1)", "weight": 1}]}) == [
        ("workload.scenarios", "weighted scenarios must be distinct")]
    assert errors({"scenarios": ["D(1,1)"], "weights": {"D(2,2)": 1}})[0][0] == \
        "workload.weights"
    assert errors({"scenarios": [{"scenario": "D(1,1)", "share": 1}]})[0][1].startswith(
        "scenarios.0.share: Extra inputs")


def test_a_dataset_defaults_to_the_dataset_scenario_and_checks_its_fields() -> None:
    workload = spec({"dataset": {"path": "/data/p.csv", "field": "prompt"}}).workload
    assert workload.scenarios == ["dataset"]
    assert workload.dataset is not None and workload.dataset.file_format == "csv"
    assert errors({"scenarios": ["dataset"]}) == [(
        "workload.scenarios", "'dataset' sends the prompts of workload.dataset; set dataset "
        "(a prompt file) or use a D/N/U scenario")]
    assert errors({"dataset": {"path": "/data/p.csv"}}) == [
        ("workload.dataset.field", "a csv dataset needs the column that holds the prompt")]
    assert errors({"dataset": {"path": "/data/p.parquet"}})[0][0] == "workload.dataset.format"
    assert errors({"dataset": {"path": "-rf.txt"}})[0][0] == "workload.dataset.path"
    assert errors({"dataset": {"path": "/data/p\n.txt"}})[0][0] == "workload.dataset.path"


def test_dataset_paths_are_stored_absolute_and_without_dot_dots(tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "spec.yaml").write_text(yaml.safe_dump({
        "name": "x", "model": {"name": "Llama-3.1-8B-Instruct"}, "space": {"tp_size": [1]},
        "workload": {"dataset": {"path": "../data/p.txt"}}}))
    loaded = load_spec(folder / "spec.yaml")
    assert loaded.workload.dataset is not None
    assert loaded.workload.dataset.path == str(tmp_path / "data" / "p.txt")  # by the spec
