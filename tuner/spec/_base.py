"""What every part of a study spec shares: the model base class and the checked text forms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from twin import GPUS

__all__ = ["GPU_TYPES", "K8S_NAME", "MODEL_TEXT", "PATH_TEXT", "GpuType", "Part"]

# The one list of GPU types: the twin's (spec, CLI, UI and pre-screen all use it).
GPU_TYPES: tuple[str, ...] = GPUS
if TYPE_CHECKING:
    GpuType = str
else:
    GpuType = Literal[GPU_TYPES]
# Served model names and paths reach a command line and a manifest: no spaces, quotes or `$`.
MODEL_TEXT = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$"
# Paths may be absolute or relative, never start with "-" (it would read as a flag).
PATH_TEXT = r"^[A-Za-z0-9./_][A-Za-z0-9._:/@+-]{0,499}$"
K8S_NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


class Part(BaseModel):
    """Base of every spec part: unknown keys refused, frozen, finite numbers only."""

    # No NaN or infinity in any number: NaN passes no bound and breaks every comparison.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
