"""``workload.dataset`` and weighted scenarios: the spec's forms of real traffic."""

from __future__ import annotations

import os
import typing
from pathlib import PurePath
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from tuner.spec._base import Part

__all__ = ["DATASET_FORMATS", "DatasetSpec", "LocalPath", "WeightedScenario", "plain_path"]

DatasetFormat = Literal["txt", "csv", "jsonl", "json"]
DATASET_FORMATS: tuple[str, ...] = typing.get_args(DatasetFormat)
# Characters no local file's name needs; a path is never passed to a command line, but it
# is shown in logs, tables and messages, where these would forge or hide text.
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


def plain_path(path: str) -> str:
    """A local file's path refused if it could forge text or pass for an option, made
    absolute and without "..": what is checked is what every trial reads."""
    if _CONTROL & set(path):
        raise ValueError("the path has control characters; name the file plainly")
    if path.startswith("-"):
        raise ValueError("the path starts with '-'; write it as ./" + path)
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


# A local file a spec names (a prompt file, a fact profile).
LocalPath = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(plain_path)]


class DatasetSpec(Part):
    """A local prompt file, sent to every level as genai-bench's dataset.

    The file is read by the tuner, once per study process, and handed to genai-bench as a JSON
    list of the prompts (genai-bench reads txt, csv and a JSON list itself, but not JSON
    lines, and its csv reader differs from the one the estimator would use); the estimator
    counts the very same prompts.
    """

    path: LocalPath = Field(
        description="The prompt file: .txt (one prompt a line), .csv (a column), .jsonl (a "
        "field of each line) or .json (a list of prompts, or of objects with the field). "
        "Relative paths are relative to the spec file (to the working directory for specs "
        "not read from a file); stored absolute.",
    )
    format: DatasetFormat | None = Field(
        None,
        description="txt, csv, jsonl or json; default: the file's suffix.",
        validate_default=True,
    )
    field: str | None = Field(
        None,
        description="The csv column or JSON field that holds the prompt (csv and jsonl "
        "need it; txt has none).",
        min_length=1,
        max_length=200,
        validate_default=True,
    )

    @field_validator("format")
    @classmethod
    def _format_known(cls, fmt: str | None, info: ValidationInfo) -> str | None:
        path = info.data.get("path")
        if fmt is None and path is not None and _suffix(path) not in DATASET_FORMATS:
            raise ValueError(
                f"cannot tell the format of '{PurePath(path).name}' from its suffix; name the "
                "file .txt, .csv, .jsonl or .json, or set format"
            )
        return fmt

    @field_validator("field")
    @classmethod
    def _field_fits_format(cls, field: str | None, info: ValidationInfo) -> str | None:
        path = info.data.get("path")
        fmt = info.data.get("format") or (_suffix(path) if path else None)
        if fmt in ("csv", "jsonl") and field is None:
            word = "column" if fmt == "csv" else "field"
            raise ValueError(f"a {fmt} dataset needs the {word} that holds the prompt")
        if fmt == "txt" and field is not None:
            raise ValueError("a txt dataset has one prompt a line and no fields; drop field")
        return field

    @property
    def file_format(self) -> str:
        """``format``, or the one the file's suffix names."""
        return self.format or _suffix(self.path)


def _suffix(path: str) -> str:
    return PurePath(path).suffix.lstrip(".").lower()


class WeightedScenario(Part):
    """One traffic scenario and its share of the traffic."""

    scenario: str = Field(description="A genai-bench scenario, or 'dataset'.")
    weight: float = Field(
        1.0, gt=0, le=1e6, description="Its share of the traffic (relative to the others)."
    )
