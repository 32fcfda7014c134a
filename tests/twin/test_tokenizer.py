"""Tests of the bundled tokenizer and of twin._tokenizer."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import twin
from twin import _tokenizer


def test_bundled_tokenizer_loads_offline_with_transformers() -> None:
    code = (
        "import sys, transformers; t = transformers.AutoTokenizer.from_pretrained(sys.argv[1]);"
        "ids = t.apply_chat_template([{'role': 'user', 'content': 'hi'}],"
        " add_generation_prompt=True);"
        "ids = ids['input_ids'] if hasattr(ids, 'keys') else ids; print(len(t), len(ids))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(twin.BUNDLED_TOKENIZER)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    vocab, prompt = (int(v) for v in result.stdout.split())
    assert 1000 < vocab <= 4096
    ours = _tokenizer.load_tokenizer().encode_chat([{"role": "user", "content": "hi"}])
    assert prompt == len(ours)


def test_build_script_regenerates_the_same_files(tmp_path: pathlib.Path) -> None:
    code = (
        "import pathlib, sys; sys.path.insert(0, sys.argv[1]); import build;"
        "build.build(pathlib.Path(sys.argv[2]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(twin.BUNDLED_TOKENIZER), str(tmp_path)],
        capture_output=True,
        timeout=120,
        check=True,
    )
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / name).read_bytes() == (twin.BUNDLED_TOKENIZER / name).read_bytes()


def test_model_directory_tokenizer_wins(tmp_path: pathlib.Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((twin.BUNDLED_TOKENIZER / name).read_bytes())
    assert _tokenizer.load_tokenizer(None, tmp_path).directory == tmp_path
    assert _tokenizer.load_tokenizer(pathlib.Path("/nonexistent")).directory == (
        twin.BUNDLED_TOKENIZER
    )


def test_natural_length_is_deterministic_and_bounded() -> None:
    lengths = {_tokenizer.natural_length(list(range(i, i + 20)), 300) for i in range(50)}
    assert len(lengths) > 10 and min(lengths) >= 1 and max(lengths) <= 300
    assert _tokenizer.natural_length([1, 2, 3], 5) <= 5
