"""Reading prompt files: each format, every bad row by line, and the preflight that uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuner import backends
from tuner.exceptions import SpecError
from tuner.spec import spec_from_dict
from tuner.spec._dataset import DatasetSpec
from tuner.workload import read_prompts, write_for_genai_bench


def test_each_format_yields_the_prompts_in_file_order(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("  first prompt \n\nsecond, with a comma\n")
    assert read_prompts(DatasetSpec(path=str(tmp_path / "p.txt"))) == (
        "first prompt", "second, with a comma")  # stripped, blank lines skipped: genai-bench's
    (tmp_path / "p.csv").write_text('id,question\n1,"multi\nline, quoted"\n2,plain\n')
    assert read_prompts(DatasetSpec(path=str(tmp_path / "p.csv"), field="question")) == (
        "multi\nline, quoted", "plain")
    (tmp_path / "p.jsonl").write_text('{"q": "a"}\n\n{"q": "b", "x": 1}\n')
    assert read_prompts(DatasetSpec(path=str(tmp_path / "p.jsonl"), field="q")) == ("a", "b")
    (tmp_path / "p.json").write_text('["x", "y"]')
    assert read_prompts(DatasetSpec(path=str(tmp_path / "p.json"))) == ("x", "y")


def test_bad_rows_are_counted_and_named_by_line(tmp_path: Path) -> None:
    lines = ['{"q": "ok"}', "not json", '{"r": "no q"}', '{"q": 7}', '{"q": "  "}',
             '["q"]', '{"q": "fine"}']
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError) as caught:
        read_prompts(DatasetSpec(path=str(tmp_path / "p.jsonl"), field="q"))
    text = str(caught.value)
    assert text.startswith("workload.dataset.path: 5 bad rows in ")
    assert "line 2: not JSON" in text and "line 3: no field 'q'" in text
    assert "line 4: the prompt is int, not text" in text and "line 5: the prompt is empty" in text
    assert "line 6: not an object with 'q'" in text


def test_csv_rows_and_columns_are_checked(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("id,prompt\n1,hello\n2,\n3,a,b\n")
    with pytest.raises(SpecError, match=r"2 bad rows .*line 3: 'prompt' is empty; "
                                         r"line 4: more values than columns"):
        read_prompts(DatasetSpec(path=str(tmp_path / "p.csv"), field="prompt"))
    with pytest.raises(SpecError, match=r"workload.dataset.field: no column 'text'; "
                                         r"the columns are id, prompt"):
        read_prompts(DatasetSpec(path=str(tmp_path / "p.csv"), field="text"))


def test_missing_empty_and_non_utf8_files_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"workload.dataset.path: cannot read .*nothing.txt"):
        read_prompts(DatasetSpec(path=str(tmp_path / "nothing.txt")))
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(SpecError, match="holds no prompts"):
        read_prompts(DatasetSpec(path=str(tmp_path / "empty.txt")))
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(SpecError, match="is not UTF-8"):
        read_prompts(DatasetSpec(path=str(tmp_path / "latin.txt")))
    with pytest.raises(SpecError, match="is not a regular file"):
        read_prompts(DatasetSpec(path=str(tmp_path), format="txt"))


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("one\n")
    assert read_prompts(DatasetSpec(path=str(path))) == ("one",)
    path.write_text("one\ntwo\n")
    assert read_prompts(DatasetSpec(path=str(path))) == ("one", "two")


def test_genai_bench_gets_a_json_copy_in_the_level_folder(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text('prompt\n"-rf /, $(x)"\n')
    level = tmp_path / "level"
    level.mkdir()
    copy = write_for_genai_bench(DatasetSpec(path=str(tmp_path / "p.csv"), field="prompt"),
                                 level)
    assert copy == level / "prompts.json"
    assert json.loads(copy.read_text()) == ["-rf /, $(x)"]


def test_preflight_refuses_a_bad_prompt_file_before_any_trial(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"q": "ok"}\n{"q": null}\n')
    spec = spec_from_dict({
        "name": "x", "model": {"name": "Llama-3.1-8B-Instruct"}, "backend": {"kind": "twin"},
        "space": {"tp_size": [1]},
        "workload": {"dataset": {"path": str(tmp_path / "p.jsonl"), "field": "q"}}})
    backend = backends.make(spec, study_id="s", workdir=tmp_path)
    with pytest.raises(SpecError, match="line 2: the prompt is NoneType, not text"):
        backend.preflight()
