"""``Study``: the Python API for batch studies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuner._home import default_store_path
from tuner._result import StudyResult
from tuner.spec import StudySpec, load_spec, spec_from_dict
from tuner.store import Store, open_store
from tuner.study import run_study

__all__ = ["Study"]


class Study:
    """A study to run from Python.

    Example::

        from tuner import Study
        result = Study.from_file("examples/quickstart.yaml").run()
        print(result.best.params, result.best.score)
        result.trials_df
    """

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec

    @classmethod
    def from_file(cls, path: str | Path) -> Study:
        """Load a spec file (YAML or JSON).

        Raises:
            SpecError: the file is missing or the spec invalid.
        """
        return cls(load_spec(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Study:
        """Validate a spec given as a dict.

        Raises:
            SpecError: the spec is invalid.
        """
        return cls(spec_from_dict(data))

    def run(
        self, *, store: Store | str | Path | None = None, ray_address: str | None = None
    ) -> StudyResult:
        """Run the study to its end (see :func:`tuner.run_study`).

        Args:
            store: a store or its path; default ``$AUTOTUNER_HOME/autotuner.db``.
            ray_address: an existing Ray cluster to run the trials on.
        """
        if not isinstance(store, Store):
            store = open_store(store or default_store_path())
        return run_study(self.spec, store=store, ray_address=ray_address)
