"""The twin backend's ``backend.faults``: checked at spec time, passed as --fault flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tuner.backends import make
from tuner.exceptions import SpecError
from tuner.spec import spec_from_dict


def spec_with(**backend: Any) -> Any:
    return spec_from_dict({"name": "faults", "model": {"name": "Llama-3.2-1B-Instruct"},
                           "backend": {"kind": "twin", **backend}, "space": {"tp_size": [1]}})


def test_each_fault_becomes_one_fault_flag(tmp_path: Path) -> None:
    spec = spec_with(faults=["crash-after=3", "slow-start=1.5", "http500-rate=0.25", "hang"])
    argv = make(spec, study_id="faults", workdir=tmp_path).describe({"tp_size": 1}).split()
    flags = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--fault"]
    assert flags == ["crash-after=3", "slow-start=1.5", "http500-rate=0.25", "hang"]


def test_no_faults_by_default(tmp_path: Path) -> None:
    spec = spec_with()
    assert spec.backend.faults == []
    assert "--fault" not in make(spec, study_id="faults", workdir=tmp_path).describe({})


@pytest.mark.parametrize("fault", ["crash-after=x", "crash-after=-1", "boom", "hang=1",
                                   "http500-rate=1.5", "http500-rate=nan", "slow-start=-2",
                                   "slow-start=inf", "slow-start=nan", "cold-prefill=-1",
                                   "cold-prefill=inf", "cold-prefill=nan", ""])
def test_a_bad_fault_is_a_spec_error_naming_the_field(fault: str) -> None:
    with pytest.raises(SpecError) as info:
        spec_with(faults=[fault])
    assert [path for path, _ in info.value.errors] == ["backend.faults"]
    assert "fault" in str(info.value)


def test_faults_are_for_the_twin_only() -> None:
    with pytest.raises(SpecError) as info:
        spec_from_dict({"name": "faults", "model": {"name": "m"},
                        "backend": {"kind": "local", "faults": ["hang"]},
                        "space": {"tp_size": [1]}})
    assert "backend.faults" in str(info.value)
