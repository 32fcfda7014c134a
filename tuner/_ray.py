"""One quiet Ray instance per process: started here, or attached to an existing cluster."""

from __future__ import annotations

import logging
import os

from tuner.exceptions import NotSupportedError

__all__ = ["GPU_RESOURCE", "init_ray"]

GPU_RESOURCE = "autotuner_gpu"
_DASHBOARD: dict[str, str | None] = {}

# Ray's banners, token warnings, usage stats and the new console output are noise to our users.
_QUIET_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_SCHEDULER_EVENTS": "0",
    "RAY_AUTH_MODE": "disabled",
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    "RAY_DEDUP_LOGS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "60",
}


def init_ray(*, gpus: int, address: str | None = None, dashboard: bool = False) -> str | None:
    """Start Ray with a pool of ``gpus`` units, or attach to ``address`` / ``RAY_ADDRESS``.

    Does nothing when Ray is already up in this process. Returns the dashboard URL, if any.

    Raises:
        NotSupportedError: the dashboard was asked for without the ``ray[default]`` extra.
    """
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    if ray.is_initialized():
        return _DASHBOARD.get("url")
    address = address or os.environ.get("RAY_ADDRESS")
    options = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": False}
    try:
        if address:
            context = ray.init(address=address, **options)
        else:
            # "local": a new instance, never one another program started on this host.
            context = ray.init(
                address="local",
                num_cpus=max(2, os.cpu_count() or 2),
                resources={GPU_RESOURCE: gpus},
                include_dashboard=dashboard,
                **options,
            )
    except Exception as e:
        if "dashboard" in str(e).lower():
            raise NotSupportedError(
                "the Ray dashboard needs the dashboard extra: "
                "pip install 'ome-autotuner[dashboard]'"
            ) from e
        raise
    url = context.dashboard_url if dashboard or address else None
    _DASHBOARD["url"] = f"http://{url}" if url and not url.startswith("http") else url
    return _DASHBOARD["url"]
