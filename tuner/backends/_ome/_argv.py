"""The flags an engine pod really runs, checked against the ones the trial records.

OME can rewrite the runner's words after the tuner rendered them: an AcceleratorClass the isvc
ends up with applies the runtime's ``supportedModelFormats[].acceleratorConfig.<class>``,
whose ``tensorParallelismOverride`` replaces the first ``--tp-size``/``--tp``/
``--tensor-parallel-size`` (and the ``--pp-*`` ones) in ``args``, and whose
``runtimeArgsOverride`` merges flags by key (OME 17b77ed, ``components/base.go``
``MergeRuntimeArgumentsOverride``). The tuner's isvc names no class, so OME itself applies
none; a cluster policy that adds ``acceleratorSelector`` would. A trial measured that way
would be recorded under flags it did not run, so the pod's own spec is the check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["mismatch", "why"]

# SGLang's spellings of one setting (argparse keeps the last one given); OME's aliases too.
_ALIASES = (
    ("--tp-size", "--tp", "--tensor-parallel-size"),
    ("--pp-size", "--pp", "--pipeline-parallel-size"),
    ("--dp-size", "--dp", "--data-parallel-size"),
)
_CONTAINER = "ome-container"


def mismatch(pods: Sequence[Mapping[str, Any]], args: Sequence[str]) -> str | None:
    """How an engine pod's command line departs from the trial's ``args``, or None.

    Each valued flag of ``args`` must take, in the container's ``command`` + ``args``, the
    value the trial gave it (the last occurrence wins, as in argparse).
    """
    wanted = _valued(args)
    for pod in pods:
        for container in (pod.get("spec") or {}).get("containers") or []:
            if container.get("name") != _CONTAINER:
                continue
            words = [*(container.get("command") or []), *(container.get("args") or [])]
            running = _valued(words)
            changed = [
                f"{flag} {running[flag]} instead of {value}"
                for flag, value in wanted.items()
                if running.get(flag, value) != value
            ]
            if changed:
                return ", ".join(changed)
    return None


def _valued(words: Sequence[str]) -> dict[str, str]:
    """Each flag that takes a value (by its first spelling) -> the last value given."""
    found: dict[str, str] = {}
    for i, word in enumerate(words):
        if not word.startswith("--"):
            continue
        flag, eq, value = word.partition("=")
        if not eq:
            following = words[i + 1] if i + 1 < len(words) else "--"
            if following.startswith("--"):
                continue  # a switch
            value = following
        found[next((group[0] for group in _ALIASES if flag in group), flag)] = value
    return found


def why(runtime: str) -> str:
    """What rewrites a trial's flags, and what to do about it (the rest of a refusal)."""
    return (
        "OME rewrote the trial's flags, so it would be measured under a configuration other "
        "than the one recorded. An AcceleratorClass selected for it applies runtime "
        f"{runtime}'s supportedModelFormats[].acceleratorConfig.<class>."
        "tensorParallelismOverride (or runtimeArgsOverride); tune on a runtime without that "
        "override, or keep the cluster from adding an acceleratorSelector to the tuner's "
        "InferenceServices"
    )
