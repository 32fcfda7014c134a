"""The winner of a study as manifests to apply, for backends whose export is a manifest."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner import backends
from tuner.exceptions import NotSupportedError

if TYPE_CHECKING:
    from tuner.spec import StudySpec

__all__ = ["export_manifests"]


def export_manifests(
    spec: StudySpec,
    params: dict[str, Any],
    *,
    runtime: bool,
    study_id: str | None = None,
    base_runtime: Mapping[str, Any] | None = None,
) -> str:
    """The manifests that serve ``params`` in production, as the study measured them.

    Args:
        spec: a study spec whose backend exports manifests (``ome``).
        params: the winner's sampled flags (the spec's fixed flags are added).
        runtime: False: one InferenceService on the study's runtime with the flags as
            ``runner.args``, exactly as measured. True: a ClusterServingRuntime with the flags
            baked into the base runtime's command, then an InferenceService that uses it.
        study_id: labels the objects with their study; default: the spec's name.
        base_runtime: the study's runtime object (e.g. read from a file); default: read from
            the cluster, which then must be reachable.

    Raises:
        NotSupportedError: the backend exports no manifests, or its runtime has no engine
            command.
        BackendError: the base runtime cannot be read from the cluster.
    """
    backend = backends.make(
        spec, study_id=study_id or spec.name, workdir=Path(tempfile.gettempdir())
    )
    if backend.EXPORT_LANGUAGE != "yaml":
        raise NotSupportedError(
            f"backend.kind '{spec.backend.kind}' has no manifests to export; `autotuner "
            "export` prints the winner's launch command instead"
        )
    return backend.export(spec.server_config(params), runtime=runtime, base_runtime=base_runtime)
