"""The OME manifests of a study: one typed variables dict per object, rendered from templates/."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import jinja2
import yaml

from tuner import serverargs
from tuner.backends.base import deployment_name
from tuner.exceptions import BackendError, NotSupportedError, SpecError
from tuner.spec import OmeBackendSpec

if TYPE_CHECKING:
    from tuner.backends.base import Deployment
    from tuner.spec import StudySpec

__all__ = [
    "DEPLOYMENT_LABEL",
    "DRY_RUN_TRIAL",
    "GPU_KEY",
    "ISVC_LABEL",
    "STUDY_LABEL",
    "TRIAL_LABEL",
    "BenchmarkJobVariables",
    "IsvcVariables",
    "RuntimeVariables",
    "benchmark_job_variables",
    "flags",
    "isvc_variables",
    "k8s_name",
    "label_value",
    "manifests",
    "model_label_keys",
    "ome_spec",
    "render",
    "results_subpath",
]

STUDY_LABEL = "autotuner.ome.io/study"
TRIAL_LABEL = "autotuner.ome.io/trial"
# BenchmarkJobs carry the name of the isvc they load, so teardown finds them from that name.
DEPLOYMENT_LABEL = "autotuner.ome.io/deployment"
ISVC_LABEL = "ome.io/inferenceservice"
GPU_KEY = "nvidia.com/gpu"
# The trial id ``describe`` and ``render`` use: a dry run has no trial of its own.
DRY_RUN_TRIAL = "dry-run"
TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "templates"

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
# Mirrors OME's pkg/constants: label names of at most 49 characters, with an 8-hex hash prefix.
_MAX_LABEL_NAME = 49
_HASH_PREFIX = 8


class IsvcVariables(TypedDict):
    """What ``templates/inference_service.yaml.j2`` renders from."""

    name: str
    namespace: str
    labels: dict[str, str]
    model: str
    runtime: str
    image: str | None
    args: list[str]
    gpus: int


class RuntimeVariables(TypedDict):
    """What ``templates/cluster_serving_runtime.yaml.j2`` renders from.

    ``base_*`` are the parts of the base runtime kept as they are (JSON objects).
    """

    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    base_spec: dict[str, Any]
    base_engine: dict[str, Any]
    base_runner: dict[str, Any]
    command: list[str]
    resources: dict[str, Any]


class BenchmarkJobVariables(TypedDict):
    """What ``templates/benchmark_job.yaml.j2`` renders from."""

    name: str
    namespace: str
    labels: dict[str, str]
    isvc: str
    scenario: str
    concurrency: int
    max_minutes: int
    max_requests: int
    output_uri: str
    folder: str
    image: str | None


def ome_spec(spec: StudySpec) -> OmeBackendSpec:
    """The ``backend`` part of an ``ome`` study.

    Raises:
        SpecError: the spec is for another backend.
    """
    if not isinstance(spec.backend, OmeBackendSpec):
        raise SpecError(f"backend.kind: the ome backend got '{spec.backend.kind}'")
    return spec.backend


def flags(spec: StudySpec, config: Mapping[str, object]) -> list[str]:
    """The words appended to the runtime's command for this config.

    ``tp_size`` and ``dp_size`` are always given, so SGLang uses exactly the GPUs the pod
    requests whatever the runtime's own command says; ``--served-model-name`` is always
    given, so requests know the ``model`` to send.
    """
    values = {"tp_size": 1, "dp_size": 1, **spec.fixed, **config}
    argv = serverargs.to_argv(values, spec.sglang_version)
    return [*argv, "--served-model-name", spec.model.name]


def isvc_variables(
    spec: StudySpec, study_id: str, config: Mapping[str, object], *, trial_id: str
) -> IsvcVariables:
    """The template variables of one trial's InferenceService."""
    backend = ome_spec(spec)
    return IsvcVariables(
        name=deployment_name(study_id, trial_id),
        namespace=backend.namespace,
        labels={STUDY_LABEL: label_value(study_id), TRIAL_LABEL: label_value(trial_id)},
        model=backend.base_model,
        runtime=backend.runtime,
        image=backend.image,
        args=flags(spec, config),
        gpus=spec.gpus_needed(dict(config)),
    )


def manifests(
    spec: StudySpec,
    study_id: str,
    config: Mapping[str, object],
    *,
    base_runtime: Mapping[str, Any] | None,
) -> str:
    """The winner as manifests to apply, named after the study (no trial label).

    Args:
        base_runtime: None: one InferenceService on the study's runtime with the flags as
            ``runner.args``, as measured. Else the study's runtime object: a
            ClusterServingRuntime with the flags baked into its command, then an
            InferenceService that uses it.

    Raises:
        NotSupportedError: the base runtime has no ``engineConfig.runner`` to bake into.
    """
    isvc = isvc_variables(spec, study_id, config, trial_id=DRY_RUN_TRIAL)
    isvc["name"] = k8s_name(spec.name)
    isvc["labels"] = {STUDY_LABEL: label_value(study_id)}
    if base_runtime is None:
        return render("inference_service.yaml.j2", isvc)
    variables = _runtime_variables(spec, study_id, config, base_runtime)
    # The flags and the image now live in the runtime.
    isvc["runtime"], isvc["args"], isvc["image"] = variables["name"], [], None
    return (
        render("cluster_serving_runtime.yaml.j2", variables)
        + "---\n"
        + render("inference_service.yaml.j2", isvc)
    )


def _runtime_variables(
    spec: StudySpec, study_id: str, config: Mapping[str, object], base: Mapping[str, Any]
) -> RuntimeVariables:
    """The template variables of the winner's ClusterServingRuntime, from the base one.

    Raises:
        NotSupportedError: the base runtime has no ``engineConfig.runner.command``.
    """
    backend = ome_spec(spec)
    base_name = str((base.get("metadata") or {}).get("name") or backend.runtime)
    base_spec = dict(base.get("spec") or {})
    engine = dict(base_spec.pop("engineConfig", None) or {})
    runner = dict(engine.pop("runner", None) or {})
    base_command = [*(runner.pop("command", None) or []), *(runner.pop("args", None) or [])]
    if not base_command:
        raise NotSupportedError(
            f"runtime '{base_name}' has no engineConfig.runner.command to bake the flags "
            "into (legacy `containers` runtimes are not supported); export without "
            "--runtime and apply the InferenceService instead"
        )
    resources = dict(runner.pop("resources", None) or {})
    runner.pop("name", None)
    gpus = str(spec.gpus_needed(dict(config)))
    for side in ("requests", "limits"):
        resources[side] = {**(resources.get(side) or {}), GPU_KEY: gpus}
    if backend.image:
        runner["image"] = backend.image
    return RuntimeVariables(
        name=f"{base_name}-{k8s_name(spec.name)}"[:253].rstrip("-."),
        labels={STUDY_LABEL: label_value(study_id)},
        annotations={
            "autotuner.ome.io/base-runtime": base_name,
            "autotuner.ome.io/flags": json.dumps(dict(config), sort_keys=True),
        },
        base_spec=base_spec,
        base_engine=engine,
        base_runner=runner,
        command=base_command + flags(spec, config),
        resources=resources,
    )


def benchmark_job_variables(
    spec: StudySpec, study_id: str, deployment: Deployment, *, scenario: str, concurrency: int
) -> BenchmarkJobVariables:
    """The template variables of the BenchmarkJob that measures one level.

    Raises:
        SpecError: ``backend.benchmark_job`` is not set.
    """
    backend = ome_spec(spec)
    job = backend.benchmark_job
    if job is None:
        raise SpecError("backend.benchmark_job: not set; BenchmarkJob mode needs a PVC")
    digest = hashlib.sha256(f"{scenario}|{concurrency}".encode()).hexdigest()[:6]
    suffix = f"-bj{digest}"
    name = deployment.name[: 63 - len(suffix)].rstrip("-") + suffix
    workload = spec.workload
    return BenchmarkJobVariables(
        name=name,
        namespace=backend.namespace,
        labels={**deployment.labels, DEPLOYMENT_LABEL: deployment.name},
        isvc=deployment.name,
        scenario=scenario,
        concurrency=concurrency,
        max_minutes=-(-workload.max_seconds_per_level // 60),
        max_requests=workload.max_requests_per_level,
        output_uri=f"pvc://{job.pvc}/{results_subpath(study_id)}",
        folder=name,
        image=job.image,
    )


def results_subpath(study_id: str) -> str:
    """Where on the BenchmarkJob PVC this study's results go."""
    return f"autotuner/{k8s_name(study_id)}"


def render(template: str, variables: Mapping[str, Any]) -> str:
    """One template of ``templates/``, rendered strictly (a missing variable fails)."""
    return _templates().get_template(template).render(**variables)


@functools.cache
def _templates() -> jinja2.Environment:
    if not TEMPLATE_DIR.is_dir():
        raise BackendError(
            f"the manifest templates are missing from {TEMPLATE_DIR}; reinstall "
            "the tuner from its source tree",
            reason="startup",
        )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["q"] = _quote
    env.filters["toyaml"] = _to_yaml
    return env


def _quote(value: object) -> str:
    """A YAML scalar that reads back as this exact string (JSON quoting is valid YAML)."""
    return json.dumps(str(value))


def _to_yaml(value: Mapping[str, Any], indent: int) -> str:
    """A block of YAML whose lines after the first are indented by ``indent`` spaces."""
    text = yaml.safe_dump(dict(value), sort_keys=False, default_flow_style=False, width=1 << 16)
    return text.rstrip("\n").replace("\n", "\n" + " " * indent)


def k8s_name(text: str) -> str:
    """``text`` as a Kubernetes name: lower case, dashes, a letter first, at most 63 chars."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not name[:1].isalpha():
        name = f"s-{name}"
    return name[:63].rstrip("-")


def label_value(text: str) -> str:
    """``text`` as a label value; ids the tuner makes already are one."""
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")


def model_label_keys(model: str, namespace: str) -> tuple[str, str]:
    """The node labels OME's model agent sets to ``Ready`` where the model is downloaded.

    First for a ClusterBaseModel, then for a BaseModel in ``namespace`` (OME shortens long
    names with a hash, as its ``pkg/constants`` does).
    """
    cluster_room = _MAX_LABEL_NAME - len("clusterbasemodel.")
    cluster = f"models.ome.io/clusterbasemodel.{_shorten(model, cluster_room)}"
    room = _MAX_LABEL_NAME - len("basemodel.") - 1
    if len(namespace) + len(model) <= room:
        return cluster, f"models.ome.io/{namespace}.basemodel.{model}"
    namespace_room = len(namespace) if len(namespace) <= 8 else 8
    if room < 16:
        namespace_room = room // 2
    short_ns = _shorten(namespace, namespace_room)
    return cluster, f"models.ome.io/{short_ns}.basemodel.{_shorten(model, room - namespace_room)}"


def _shorten(text: str, room: int) -> str:
    if len(text) <= room:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:_HASH_PREFIX]
    keep = room - _HASH_PREFIX - 1
    return digest[:room] if keep <= 0 else f"{digest}-{text[-keep:]}"
