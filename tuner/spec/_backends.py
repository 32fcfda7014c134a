"""Where a study's servers come from: one spec class per ``backend.kind``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from tuner import serverargs
from tuner.spec import _limits
from tuner.spec._base import K8S_NAME, MODEL_TEXT, PATH_TEXT, GpuType, Part
from tuner.spec._dataset import LocalPath

__all__ = [
    "BackendSpec",
    "EstimateBackendSpec",
    "LocalBackendSpec",
    "OmeBackendSpec",
    "OmeBenchmarkJobSpec",
    "ProfilePath",
    "TwinBackendSpec",
]

# A fact profile file (``autotuner calibrate`` writes one), checked like a prompt file's path:
# plain and made absolute. Whether it exists and parses is checked when a study starts
# (``Backend.preflight``, the pre-screen), not here: a spec stored in the database must keep
# loading after the file has moved, to be shown, exported or compared.
ProfilePath = LocalPath
_PROFILE_TEXT = (
    "Fact profile (YAML, from autotuner calibrate) whose factors scale the twin's calibrated "
    "facts; relative paths are relative to the working directory; stored absolute."
)


class _BackendBase(Part):
    startup_timeout_s: float = Field(
        600,
        gt=0,
        le=_limits.MAX_STARTUP_TIMEOUT_S,
        description="Seconds a server may take to become healthy.",
    )
    sglang_version: str = Field(
        default_factory=serverargs.default_version,
        description="SGLang version of the servers: its flag table checks the spec's flags "
        "(autotuner flags --version V lists them); default: the twin's.",
        examples=list(serverargs.versions()),
    )

    @field_validator("sglang_version")
    @classmethod
    def _version_has_table(cls, version: str) -> str:
        serverargs.table(version)  # a ValueError listing the supported versions
        return version

    @model_validator(mode="after")
    def _startup_timeout_bounded(self) -> _BackendBase:
        # Kinds that redeclare the field with their own default skip the bound above.
        if self.startup_timeout_s > _limits.MAX_STARTUP_TIMEOUT_S:
            raise ValueError(
                f"startup_timeout_s: at most {_limits.MAX_STARTUP_TIMEOUT_S:,.0f} s (a day); "
                "a server that is not healthy by then will not become healthy"
            )
        return self


class _SimulatedBase(_BackendBase):
    @field_validator("sglang_version")
    @classmethod
    def _version_is_the_twins(cls, version: str) -> str:
        if version != serverargs.default_version():
            raise ValueError(
                f"the twin simulates SGLang {serverargs.default_version()} only; "
                f"use backend kind local or ome for SGLang {version}"
            )
        return version


class TwinBackendSpec(_SimulatedBase):
    """Local SGLang digital-twin processes: no GPU needed."""

    kind: Literal["twin"] = "twin"
    gpu: GpuType = Field("H100", description="The simulated GPU.")
    gpus: int = Field(1, ge=1, le=64, description="Simulated GPUs the study may use at once.")
    time_scale: float = Field(
        1.0, ge=1.0, le=50.0, description="Run the twin this many times faster than real time."
    )
    faults: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Failures every trial's twin server injects, each passed as --fault: "
        "crash-after=N (exit after N requests), hang, slow-start=SECONDS, http500-rate=P "
        "(a fraction P of generation requests answered with HTTP 500), cold-prefill=SECONDS "
        "(the first real prefill forward takes SECONDS longer); for testing the tuner.",
    )
    profile: ProfilePath | None = Field(None, description=_PROFILE_TEXT + " Passed as --profile.")

    @field_validator("faults")
    @classmethod
    def _faults_parse(cls, faults: list[str]) -> list[str]:
        import argparse

        from twin._faults import make_faults

        for text in faults:
            try:
                make_faults([text])
            except argparse.ArgumentTypeError as e:
                raise ValueError(str(e)) from e
        return faults


class EstimateBackendSpec(_SimulatedBase):
    """The twin's in-process estimator: no HTTP, no genai-bench; seconds per study."""

    kind: Literal["estimate"] = "estimate"
    gpu: GpuType = Field("H100", description="The simulated GPU.")
    gpus: int = Field(1, ge=1, le=64, description="Simulated GPUs the study may use at once.")
    profile: ProfilePath | None = Field(None, description=_PROFILE_TEXT)


class LocalBackendSpec(_BackendBase):
    """Real ``python -m sglang.launch_server`` processes on this host's GPUs."""

    kind: Literal["local"] = "local"
    gpus: int = Field(1, ge=1, le=64, description="GPUs the study may use at once.")
    python: str | None = Field(
        None,
        pattern=PATH_TEXT,
        description="Python interpreter that has sglang installed (a path, or a name on PATH); "
        "checked before the first trial; default: this one.",
    )
    startup_timeout_s: float = Field(1800, gt=0, description="Seconds to wait for /health.")


class OmeBenchmarkJobSpec(Part):
    """Run each level as an OME BenchmarkJob writing to a PVC, instead of genai-bench in Ray."""

    pvc: str = Field(
        pattern=K8S_NAME,
        max_length=253,
        description="PersistentVolumeClaim in backend.namespace the results go to.",
    )
    mount_path: str = Field(
        "/results",
        pattern=r"^/[A-Za-z0-9._/-]*$",
        description="Where the tuner's own pods mount that PVC (ReadWriteMany) to read results.",
    )
    image: str | None = Field(
        None,
        pattern=MODEL_TEXT,
        description="genai-bench image; default: the one in OME's benchmarkjob-config.",
    )
    timeout_s: float = Field(
        600,
        gt=0,
        le=_limits.MAX_STARTUP_TIMEOUT_S,
        description="Seconds one level's job may take beyond its time budget.",
    )


class OmeBackendSpec(_BackendBase):
    """One OME InferenceService per trial on a Kubernetes cluster."""

    kind: Literal["ome"] = "ome"
    namespace: str = Field(
        "autotuner",
        pattern=K8S_NAME,
        max_length=63,
        description="Namespace the trials' InferenceServices go to.",
    )
    base_model: str = Field(
        description="Name of the OME ClusterBaseModel (or BaseModel).",
        pattern=K8S_NAME,
        max_length=253,
    )
    runtime: str = Field(
        description="Name of the SGLang ClusterServingRuntime to start from.",
        pattern=K8S_NAME,
        max_length=253,
    )
    gpus: int | None = Field(
        None, ge=1, le=4096, description="Cap on GPUs used at once; default: all free ones."
    )
    kube_context: str | None = Field(None, description="kubeconfig context; default: current.")
    startup_timeout_s: float = Field(
        1800, gt=0, le=_limits.MAX_STARTUP_TIMEOUT_S, description="Seconds to wait for Ready."
    )
    kubeconfig: str | None = Field(
        None,
        description="kubeconfig file; default: in-cluster config inside a pod, "
        "else $KUBECONFIG, else ~/.kube/config.",
    )
    image: str | None = Field(
        None,
        pattern=MODEL_TEXT,
        description="SGLang image for the trials; default: the runtime's.",
    )
    port: int = Field(
        8080,
        ge=1,
        le=65535,
        description="The runtime's container port (8080 in OME's SGLang runtimes).",
    )
    in_cluster: bool | None = Field(
        None,
        description="Reach trial servers at their in-cluster URL; default: true when the "
        "tuner runs in a pod, else false (through a local relay, see port_forward).",
    )
    port_forward: bool | None = Field(
        None,
        description="Outside the cluster, reach servers by a pod port-forward (true), "
        "straight at status.url (false), or by port-forward only when status.url is not "
        "reachable (default).",
    )
    teardown_timeout_s: float = Field(
        600,
        gt=0,
        le=_limits.MAX_STARTUP_TIMEOUT_S,
        description="Seconds to wait for a trial's pods to go after deleting it.",
    )
    benchmark_job: OmeBenchmarkJobSpec | None = Field(
        None,
        description="Measure with OME BenchmarkJobs writing to a PVC; default: genai-bench "
        "in the trial's Ray worker.",
    )


BackendSpec = Annotated[
    TwinBackendSpec | EstimateBackendSpec | LocalBackendSpec | OmeBackendSpec,
    Field(discriminator="kind"),
]
