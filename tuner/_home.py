"""Where the tuner keeps its files: the store and one working folder per study."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["datasets_dir", "default_home", "default_store_path", "study_workdir"]


def default_home() -> Path:
    """Where the store and study folders live: ``$AUTOTUNER_HOME`` or ``~/.autotuner``."""
    return Path(os.environ.get("AUTOTUNER_HOME", Path.home() / ".autotuner"))


def default_store_path() -> Path:
    """The store used when none is given: ``autotuner.db`` in :func:`default_home`."""
    return default_home() / "autotuner.db"


def study_workdir(store_path: Path, study_id: str) -> Path:
    """A study's server logs, benchmark results and Ray state: next to its store."""
    return store_path.parent / "studies" / study_id


def datasets_dir(store_path: Path) -> Path:
    """The one folder whose prompt files a service's studies may read (``workload.dataset``):
    ``$AUTOTUNER_DATASETS``, or ``datasets`` next to the store. A service reads files for
    whoever may submit a study, so it never reads from anywhere else."""
    folder = os.environ.get("AUTOTUNER_DATASETS")
    return Path(folder).expanduser() if folder else store_path.parent / "datasets"
